fn main() {
    println!("{}", sample_project::greeting("agent"));
}
