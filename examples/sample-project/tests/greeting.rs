#[test]
fn greets() {
    assert_eq!(sample_project::greeting("x"), "hello, x");
}
