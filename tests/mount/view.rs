//! What the read-only view shows and hides (SPEC §2, §3 read rows, §5).

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// Creates `hidden` and `visible` files (a trailing `/` makes a directory) in a fresh SOURCE,
/// mounts with the default policy and checks each.
fn default_policy_case(hidden: &[&str], visible: &[&str]) {
    let s = Scene::new();
    for rel in hidden.iter().chain(visible) {
        if let Some(dir) = rel.strip_suffix('/') {
            s.dir(dir);
        } else {
            s.file(rel);
        }
    }
    let _m = s.mount(&[]);
    for rel in hidden {
        assert_hidden(&s.mnt, rel.trim_end_matches('/'));
    }
    for rel in visible {
        assert_visible(&s, rel.trim_end_matches('/'));
    }
}

// --- the `secrets` preset ---------------------------------------------------------------------

#[test]
fn secrets_dotenv_hidden_at_any_depth() {
    default_policy_case(
        &[".env", "config/.env", "a/b/c/.env"],
        &["README.md", "config/app.toml", "a/b/c/main.rs"],
    );
}

#[test]
fn secrets_dotenv_variants_hidden() {
    default_policy_case(
        &[
            ".env.local",
            ".env.production",
            ".env.development.local",
            "app/.env.local",
        ],
        &["README.md", "app/env.rs", "environment.txt"],
    );
}

#[test]
fn secrets_dotenv_templates_stay_visible() {
    default_policy_case(
        &[".env"],
        &[
            ".env.example",
            ".env.sample",
            ".env.template",
            "app/.env.example",
        ],
    );
}

#[test]
fn secrets_dotenv_editor_copies_hidden() {
    default_policy_case(
        &[".env~", ".env.swp", "#.env#", ".env.bak", "sub/.env~"],
        &["README.md", "notes~", "sub/main.rs.bak"],
    );
}

#[test]
fn secrets_key_material_extensions_hidden() {
    default_policy_case(
        &[
            "server.pem",
            "certs/deep/tls.key",
            "client.p12",
            "client.pfx",
            "app.jks",
            "release.keystore",
            "passwords.kdbx",
        ],
        &["certs/deep/README", "keys.txt", "pem.rs", "monkey.txt"],
    );
}

#[test]
fn secrets_ssh_key_files_hidden() {
    default_policy_case(
        &[
            "id_rsa",
            "id_rsa.pub",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            "id_ed25519.pub",
            "keys/id_rsa",
        ],
        &["keys/known.txt", "rsa.txt"],
    );
}

#[test]
fn secrets_ssh_and_gnupg_directories_hidden() {
    default_policy_case(
        &[
            ".ssh/",
            ".ssh/config",
            ".ssh/known_hosts",
            "home/u/.ssh/",
            "home/u/.ssh/authorized_keys",
            ".gnupg/",
            ".gnupg/pubring.kbx",
        ],
        &["home/u/profile.txt", "ssh.md"],
    );
}

#[test]
fn secrets_cloud_credential_directories_hidden() {
    let s = Scene::new();
    for rel in [
        ".aws/credentials",
        ".azure/config",
        ".config/gcloud/credentials.db",
        ".kube/config",
        "kubeconfig",
        "deploy/kubeconfig",
        ".config/other.txt",
        "README.md",
    ] {
        s.file(rel);
    }
    let _m = s.mount(&[]);
    for rel in [
        ".aws",
        ".aws/credentials",
        ".azure",
        ".azure/config",
        ".config/gcloud",
        ".config/gcloud/credentials.db",
        ".kube",
        ".kube/config",
        "kubeconfig",
        "deploy/kubeconfig",
    ] {
        assert_hidden(&s.mnt, rel);
    }
    assert_visible(&s, ".config/other.txt");
    assert_listing(&s.m(".config"), &["other.txt"]);
    assert_listing(&s.m("deploy"), &[]);
    assert_listing(&s.mnt, &[".config", "README.md", "deploy"]);
}

#[test]
fn secrets_docker_config_hidden_but_not_its_directory() {
    default_policy_case(
        &[".docker/config.json"],
        &[".docker/daemon.json", "config.json", "docker/config.json"],
    );
}

#[test]
fn secrets_package_and_service_tokens_hidden() {
    default_policy_case(
        &[
            ".npmrc",
            ".pypirc",
            ".netrc",
            "_netrc",
            ".git-credentials",
            ".pgpass",
            ".my.cnf",
            ".vault-token",
            "web/.npmrc",
        ],
        &["web/package.json", ".gitignore", "netrc.md"],
    );
}

#[test]
fn secrets_terraform_state_and_vars_hidden() {
    default_policy_case(
        &[
            "terraform.tfstate",
            "terraform.tfstate.backup",
            "prod.tfvars",
            "infra/env/x.tfstate",
        ],
        &["main.tf", "infra/variables.tf"],
    );
}

#[test]
fn secrets_credentials_secrets_and_htpasswd_hidden() {
    default_policy_case(
        &[
            "credentials.json",
            "secrets.yaml",
            "config/secrets.json",
            "secrets.toml",
            ".htpasswd",
            "www/.htpasswd",
        ],
        &["credentials.md", "config/settings.yaml", "www/index.html"],
    );
}

// --- presets, allow, hide ---------------------------------------------------------------------

#[test]
fn vcs_preset_from_policy_file_hides_repositories() {
    let s = Scene::new();
    for rel in [
        ".git/HEAD",
        ".git/config",
        ".hg/store/data",
        ".svn/entries",
        "lib/.git/HEAD",
        ".gitignore",
        ".env",
        "src/main.rs",
    ] {
        s.file(rel);
    }
    let policy = s.policy("[view]\npresets = [\"secrets\", \"vcs\"]\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    for rel in [
        ".git",
        ".git/HEAD",
        ".git/config",
        ".hg",
        ".hg/store/data",
        ".svn",
        ".svn/entries",
        "lib/.git",
        ".env",
    ] {
        assert_hidden(&s.mnt, rel);
    }
    assert_visible(&s, ".gitignore");
    assert_visible(&s, "src/main.rs");
    assert_listing(&s.mnt, &[".gitignore", "lib", "src"]);
    assert_listing(&s.m("lib"), &[]);
}

#[test]
fn vcs_directories_visible_without_the_vcs_preset() {
    let s = Scene::new();
    s.file(".git/HEAD");
    s.file(".env");
    let _m = s.mount(&[]);
    assert_visible(&s, ".git/HEAD");
    assert_hidden(&s.mnt, ".env");
}

/// SOURCE for the allow tests: `src/lib/` is the only allowed subtree.
fn allow_scene() -> Scene {
    let s = Scene::new();
    for rel in [
        "README.md",
        "Cargo.toml",
        "src/main.rs",
        "src/lib/mod.rs",
        "src/lib/deep/util.rs",
        "src/library.rs",
        "docs/guide.md",
        "Src/lib/x.rs",
    ] {
        s.file(rel);
    }
    s
}

fn check_allow_scene(s: &Scene) {
    assert_listing(&s.mnt, &["src"]);
    assert_listing(&s.m("src"), &["lib"]);
    assert_visible(s, "src/lib/mod.rs");
    assert_visible(s, "src/lib/deep/util.rs");
    assert_listing(&s.m("src/lib"), &["deep", "mod.rs"]);
    for rel in [
        "README.md",
        "Cargo.toml",
        "src/main.rs",
        "src/library.rs",
        "docs",
        "docs/guide.md",
        // allow matching is exact, not case-insensitive
        "Src",
        "Src/lib/x.rs",
    ] {
        assert_hidden(&s.mnt, rel);
    }
    let meta = fs::metadata(s.m("src")).expect("stat src, a directory on the way to lib/");
    assert!(meta.is_dir());
}

#[test]
fn allow_list_from_policy_file_shows_ancestors_listing_only_the_allowed() {
    let s = allow_scene();
    let policy = s.policy("[view]\nallow = [\"src/lib/\"]\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    check_allow_scene(&s);
}

#[test]
fn allow_flag_replaces_the_allow_list() {
    let s = allow_scene();
    let policy = s.policy("[view]\nallow = [\"docs/\"]\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap(), "--allow", "src/lib/"]);
    check_allow_scene(&s);
}

#[test]
fn hide_beats_allow() {
    let s = Scene::new();
    for rel in [
        "src/a.rs",
        "src/gen/out.rs",
        "src/.env",
        "src/private.txt",
        "other.txt",
    ] {
        s.file(rel);
    }
    let policy = s.policy(
        "[view]\nallow = [\"src/\", \"src/.env\", \"src/gen/out.rs\"]\nhide = [\"src/gen/\"]\n",
    );
    let _m = s.mount(&["-c", policy.to_str().unwrap(), "--hide", "private.txt"]);
    assert_visible(&s, "src/a.rs");
    assert_hidden(&s.mnt, "src/gen");
    assert_hidden(&s.mnt, "src/gen/out.rs");
    assert_hidden(&s.mnt, "src/.env");
    assert_hidden(&s.mnt, "src/private.txt");
    assert_hidden(&s.mnt, "other.txt");
    assert_listing(&s.m("src"), &["a.rs"]);
}

#[test]
fn anchored_pattern_hides_only_at_the_root() {
    let s = Scene::new();
    for rel in ["build/out.o", "sub/build/keep.txt", "README.md"] {
        s.file(rel);
    }
    let _m = s.mount(&["--hide", "/build"]);
    assert_hidden(&s.mnt, "build");
    assert_hidden(&s.mnt, "build/out.o");
    assert_visible(&s, "sub/build");
    assert_visible(&s, "sub/build/keep.txt");
    assert_listing(&s.mnt, &["README.md", "sub"]);
}

#[test]
fn negation_reincludes_within_the_list() {
    let s = Scene::new();
    for rel in ["a.log", "logs2/b.log", "keep.log", "sub/keep.log", "c.txt"] {
        s.file(rel);
    }
    let policy = s.policy("[view]\nhide = [\"*.log\", \"!keep.log\"]\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_hidden(&s.mnt, "a.log");
    assert_hidden(&s.mnt, "logs2/b.log");
    assert_visible(&s, "keep.log");
    assert_visible(&s, "sub/keep.log");
    assert_visible(&s, "c.txt");
}

#[test]
fn negation_never_reincludes_beneath_an_excluded_directory() {
    let s = Scene::new();
    for rel in ["secrets/public.txt", "secrets/private.txt", "other.txt"] {
        s.file(rel);
    }
    let policy = s.policy("[view]\nhide = [\"secrets/\", \"!secrets/public.txt\"]\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_hidden(&s.mnt, "secrets");
    assert_hidden(&s.mnt, "secrets/public.txt");
    assert_hidden(&s.mnt, "secrets/private.txt");
    assert_visible(&s, "other.txt");
    assert_listing(&s.mnt, &["other.txt"]);
}

#[test]
fn directory_only_pattern_spares_files_of_that_name() {
    let s = Scene::new();
    s.file("logs/today.txt");
    s.file("sub/logs/old.txt");
    s.file("other/logs");
    let _m = s.mount(&["--hide", "logs/"]);
    assert_hidden(&s.mnt, "logs");
    assert_hidden(&s.mnt, "logs/today.txt");
    assert_hidden(&s.mnt, "sub/logs");
    assert_visible(&s, "other/logs");
}

#[test]
fn hide_matching_ignores_case() {
    let s = Scene::new();
    for rel in [
        ".ENV",
        ".Env",
        "config/.eNv",
        "Private.TXT",
        "SERVER.PEM",
        "ok.txt",
    ] {
        s.file(rel);
    }
    let _m = s.mount(&["--hide", "private.txt"]);
    for rel in [".ENV", ".Env", "config/.eNv", "Private.TXT", "SERVER.PEM"] {
        assert_hidden(&s.mnt, rel);
    }
    assert_visible(&s, "ok.txt");
    assert_listing(&s.mnt, &["config", "ok.txt"]);
}

#[test]
fn no_presets_shows_dotenv() {
    let s = Scene::new();
    s.file(".env");
    s.file("x.txt");
    let _m = s.mount(&["--no-presets", "--hide", "x.txt"]);
    assert_visible(&s, ".env");
    assert_hidden(&s.mnt, "x.txt");
}

// --- symlinks ---------------------------------------------------------------------------------

#[test]
fn symlink_contain_relative_inside_is_readable() {
    let s = Scene::new();
    s.file("a.txt");
    s.file("sub/deep/b.txt");
    s.symlink("l", "a.txt");
    s.symlink("sub/up", "../a.txt");
    s.symlink("sub/deep/up2", "../../a.txt");
    s.symlink("dirlink", "sub/deep");
    s.symlink("dangling", "not-yet.txt");
    let _m = s.mount(&[]);
    for rel in ["l", "sub/up", "sub/deep/up2", "dirlink", "dangling"] {
        assert_visible(&s, rel);
    }
    let a = fs::read(s.s("a.txt")).unwrap();
    assert_eq!(fs::read(s.m("l")).unwrap(), a, "read through l");
    assert_eq!(fs::read(s.m("sub/up")).unwrap(), a, "read through sub/up");
    assert_eq!(
        fs::read(s.m("sub/deep/up2")).unwrap(),
        a,
        "read through up2"
    );
    assert_eq!(
        fs::read(s.m("dirlink/b.txt")).unwrap(),
        fs::read(s.s("sub/deep/b.txt")).unwrap(),
        "read through a directory symlink"
    );
    // A link to a path that does not exist yet is shown; following it finds nothing.
    assert_errno(fs::read(s.m("dangling")), libc::ENOENT, "read dangling");
}

#[test]
fn symlink_contain_to_hidden_path_is_hidden() {
    let s = Scene::new();
    s.file(".env");
    s.file(".ssh/id_rsa");
    s.file("a.txt");
    s.symlink("cfg", ".env");
    s.symlink("sub/cfg", "../.env");
    s.symlink("key", ".ssh/id_rsa");
    s.symlink("sshdir", ".ssh");
    s.symlink("upper", ".ENV");
    s.symlink("future", ".env.local");
    s.symlink("sneaky", "sub/../.env");
    let _m = s.mount(&[]);
    for rel in [
        "cfg", "sub/cfg", "key", "sshdir", "upper", "future", "sneaky",
    ] {
        assert_hidden(&s.mnt, rel);
    }
    assert_visible(&s, "a.txt");
    assert_listing(&s.mnt, &["a.txt", "sub"]);
}

#[test]
fn symlink_contain_absolute_target_is_hidden() {
    let s = Scene::new();
    s.file("a.txt");
    s.symlink("abs", "/etc/passwd");
    s.symlink("root", "/");
    // Absolute even though it points into SOURCE.
    s.symlink("self", s.s("a.txt"));
    let _m = s.mount(&[]);
    for rel in ["abs", "root", "self"] {
        assert_hidden(&s.mnt, rel);
    }
    assert_listing(&s.mnt, &["a.txt"]);
}

#[test]
fn symlink_contain_escaping_target_is_hidden() {
    let s = Scene::new();
    s.file("a.txt");
    s.symlink("esc", "../../etc/passwd");
    s.symlink("parent", "..");
    s.symlink("sub/esc", "../../x");
    s.symlink("sub/deeper/esc", "../../../mnt");
    let _m = s.mount(&[]);
    for rel in ["esc", "parent", "sub/esc", "sub/deeper/esc"] {
        assert_hidden(&s.mnt, rel);
    }
    assert_listing(&s.mnt, &["a.txt", "sub"]);
    assert_listing(&s.m("sub"), &["deeper"]);
}

#[test]
fn symlink_contain_to_not_allowed_path_is_hidden() {
    let s = Scene::new();
    s.file("other.txt");
    s.file("src/a.rs");
    s.symlink("src/out", "../other.txt");
    s.symlink("src/ok", "a.rs");
    s.symlink("src/roundtrip", "../src/a.rs");
    let _m = s.mount(&["--allow", "src/"]);
    assert_hidden(&s.mnt, "src/out");
    assert_visible(&s, "src/ok");
    assert_visible(&s, "src/roundtrip");
    assert_eq!(
        fs::read(s.m("src/roundtrip")).unwrap(),
        fs::read(s.s("src/a.rs")).unwrap()
    );
    assert_listing(&s.m("src"), &["a.rs", "ok", "roundtrip"]);
}

#[test]
fn symlinks_hide_hides_every_link() {
    let s = Scene::new();
    s.file("a.txt");
    s.symlink("l", "a.txt");
    s.symlink("sub/up", "../a.txt");
    let policy = s.policy("[view]\nsymlinks = \"hide\"\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_hidden(&s.mnt, "l");
    assert_hidden(&s.mnt, "sub/up");
    assert_visible(&s, "a.txt");
}

#[test]
fn symlinks_keep_shows_links_as_stored() {
    let s = Scene::new();
    s.file(".env");
    s.file("a.txt");
    s.symlink("abs", "/etc/passwd");
    s.symlink("cfg", ".env");
    let policy = s.policy("[view]\nsymlinks = \"keep\"\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_visible(&s, "abs");
    assert_visible(&s, "cfg");
    // The link is shown, but following it still goes through the view, where .env is hidden.
    assert_errno(
        fs::read(s.m("cfg")),
        libc::ENOENT,
        "read through cfg -> .env",
    );
    assert_hidden(&s.mnt, ".env");
}

// --- hardlinks --------------------------------------------------------------------------------

#[test]
fn hardlink_alias_of_hidden_file_is_hidden() {
    let s = Scene::new();
    s.file_with(".env", b"API_KEY=hunter2\n");
    fs::hard_link(s.s(".env"), s.s("notes.txt")).unwrap();
    s.file("single.txt");
    s.file("pair1.txt");
    s.dir("sub");
    fs::hard_link(s.s("pair1.txt"), s.s("sub/pair2.txt")).unwrap();
    let _m = s.mount(&[]);
    assert_hidden(&s.mnt, ".env");
    assert_hidden(&s.mnt, "notes.txt");
    assert_visible(&s, "single.txt");
    assert_visible(&s, "pair1.txt");
    assert_visible(&s, "sub/pair2.txt");
    assert_listing(&s.mnt, &["pair1.txt", "single.txt", "sub"]);
}

#[test]
fn hardlink_alias_of_not_allowed_file_is_hidden() {
    let s = Scene::new();
    s.file("other/y.txt");
    s.dir("src");
    fs::hard_link(s.s("other/y.txt"), s.s("src/x.txt")).unwrap();
    s.file("src/z.txt");
    let _m = s.mount(&["--allow", "src/"]);
    assert_hidden(&s.mnt, "src/x.txt");
    assert_visible(&s, "src/z.txt");
    assert_listing(&s.m("src"), &["z.txt"]);
}

#[test]
fn hardlinks_keep_shows_aliases() {
    let s = Scene::new();
    s.file(".env");
    fs::hard_link(s.s(".env"), s.s("notes.txt")).unwrap();
    let policy = s.policy("[view]\nhardlinks = \"keep\"\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_hidden(&s.mnt, ".env");
    assert_visible(&s, "notes.txt");
}

/// A file whose other name lies outside SOURCE, as a local `git clone` leaves its objects.
fn scene_with_a_link_from_outside() -> Scene {
    let s = Scene::new();
    s.file_with("objects/ab/cdef", b"object\n");
    fs::hard_link(s.s("objects/ab/cdef"), s.base().join("outside-link")).unwrap();
    s
}

#[test]
fn hardlinks_from_outside_source_do_not_hide_by_default() {
    let s = scene_with_a_link_from_outside();
    let _m = s.mount(&[]);
    assert_visible(&s, "objects/ab/cdef");
}

#[test]
fn hardlinks_strict_hides_files_linked_from_outside_source() {
    let s = scene_with_a_link_from_outside();
    s.file("objects/single");
    let policy = s.policy("[view]\nhardlinks = \"strict\"\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_hidden(&s.mnt, "objects/ab/cdef");
    assert_visible(&s, "objects/single");
}

#[test]
fn hardlinks_strict_still_hides_aliases_of_hidden_files() {
    let s = Scene::new();
    s.file(".env");
    fs::hard_link(s.s(".env"), s.s("notes.txt")).unwrap();
    let policy = s.policy("[view]\nhardlinks = \"strict\"\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    assert_hidden(&s.mnt, "notes.txt");
}

// --- every read-side operation on hidden names --------------------------------------------------

#[test]
fn hidden_names_answer_enoent_to_every_read_operation() {
    let s = Scene::new();
    s.file_with(".env", b"SECRET=1\n");
    lsetxattr(&s.s(".env"), b"user.x", b"v").expect("set user.x on .env in SOURCE");
    s.symlink("cfg", ".env");
    s.file(".ssh/id_rsa");
    s.file("README.md");
    let _m = s.mount(&[]);
    // lstat, stat, open, readlink, getxattr, listxattr, opendir, and readdir absence.
    assert_hidden(&s.mnt, ".env");
    assert_hidden(&s.mnt, "cfg");
    assert_hidden(&s.mnt, ".ssh");
    assert_hidden(&s.mnt, ".ssh/id_rsa");
    assert_errno(getxattr(&s.m(".env"), b"user.x"), libc::ENOENT, "getxattr");
    assert_errno(
        getxattr(&s.m("cfg"), b"user.x"),
        libc::ENOENT,
        "getxattr cfg",
    );
    assert_errno(
        fs::read_link(s.m("cfg")),
        libc::ENOENT,
        "readlink of a hidden symlink",
    );
    assert_listing(&s.mnt, &["README.md"]);

    // What `ls -la` prints (readdir plus an lstat of each entry).
    let out = Command::new("ls")
        .arg("-la")
        .arg(&s.mnt)
        .env("LC_ALL", "C")
        .output()
        .expect("run ls");
    assert!(out.status.success(), "ls -la: {:?}", out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("README.md"),
        "ls -la shows README.md:\n{text}"
    );
    for name in [".env", "cfg", ".ssh"] {
        assert!(
            !text
                .lines()
                .any(|l| l.split_whitespace().last() == Some(name)
                    || l.contains(&format!(" {name} -> "))),
            "ls -la lists hidden {name}:\n{text}"
        );
    }
    let out = Command::new("ls")
        .arg("-a")
        .arg(&s.mnt)
        .env("LC_ALL", "C")
        .output()
        .expect("run ls -a");
    let names: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(names, vec![".", "..", "README.md"], "ls -a output");
}

#[test]
fn hidden_names_stay_hidden_under_path_spellings() {
    let s = Scene::new();
    s.file(".env");
    s.file("src/main.rs");
    let _m = s.mount(&[]);
    let mut paths: Vec<OsString> = Vec::new();
    for spelling in [
        &b"/src/../.env"[..],
        b"/./.env",
        b"/.env/",
        b"//.env",
        b"/src/./../.env",
        b"/src//..//./.env",
    ] {
        let mut p = s.mnt.as_os_str().as_bytes().to_vec();
        p.extend_from_slice(spelling);
        paths.push(os(&p));
    }
    for p in paths {
        let path = Path::new(&p);
        assert_errno(fs::File::open(path), libc::ENOENT, &format!("open {p:?}"));
        assert_errno(fs::metadata(path), libc::ENOENT, &format!("stat {p:?}"));
        assert_errno(
            fs::symlink_metadata(path),
            libc::ENOENT,
            &format!("lstat {p:?}"),
        );
    }
}

// --- the source changing underneath -------------------------------------------------------------

#[test]
fn directory_swapped_for_symlink_to_etc_never_serves_etc() {
    let s = Scene::new();
    s.file_with("d/passwd", b"decoy, not the host's passwd\n");
    s.file("d/only-in-d");
    let host_passwd = fs::read("/etc/passwd").expect("read /etc/passwd");
    let _m = s.mount(&[]);
    // Look the directory and its file up through the mount first, so the kernel and the daemon
    // hold them.
    assert!(fs::metadata(s.m("d")).unwrap().is_dir());
    assert_eq!(
        fs::read(s.m("d/passwd")).unwrap(),
        b"decoy, not the host's passwd\n"
    );
    assert_listing(&s.m("d"), &["only-in-d", "passwd"]);

    fs::rename(s.s("d"), s.s("d.old")).unwrap();
    std::os::unix::fs::symlink("/etc", s.s("d")).unwrap();

    let allowed: Vec<OsString> = vec!["only-in-d".into(), "passwd".into()];
    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut rounds = 0;
    loop {
        rounds += 1;
        if let Ok(data) = fs::read(s.m("d/passwd")) {
            assert_ne!(data, host_passwd, "served /etc/passwd through d/passwd");
        }
        if let Ok(data) = fs::read(s.m("d/hostname")) {
            panic!("served /etc/hostname through d/hostname: {data:?}");
        }
        if let Ok(rd) = fs::read_dir(s.m("d")) {
            for entry in rd.flatten() {
                assert!(
                    allowed.contains(&entry.file_name()),
                    "listing d shows {:?}, a file of /etc",
                    entry.file_name()
                );
            }
        }
        if let Ok(meta) = fs::symlink_metadata(s.m("d")) {
            assert!(
                !meta.file_type().is_symlink(),
                "d (now an absolute symlink) is shown as a symlink"
            );
        }
        if Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(rounds > 10);
}

// --- special files ------------------------------------------------------------------------------

#[test]
fn fifo_is_listed_and_opening_it_does_not_stall_the_daemon() {
    let s = Scene::new();
    s.file("a.txt");
    mknod(&s.s("fifo"), libc::S_IFIFO | 0o644, 0).expect("mkfifo in SOURCE");
    let _m = s.mount(&[]);
    let entry = fs::read_dir(&s.mnt)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_name() == "fifo")
        .expect("fifo is listed");
    assert!(entry.file_type().unwrap().is_fifo(), "d_type of fifo");
    assert!(
        fs::symlink_metadata(s.m("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );

    let fifo = s.m("fifo");
    let res = within(Duration::from_secs(10), "open fifo O_NONBLOCK", move || {
        open_raw(&fifo, libc::O_RDONLY | libc::O_NONBLOCK)
    });
    // The kernel opens a FIFO itself: the reader gets a pipe of the view's own inode at once
    // (no writer needed with O_NONBLOCK), and SOURCE's FIFO is never opened — it still has no
    // reader, so a writer of it gets ENXIO.
    let reader = res.expect("open(fifo, O_RDONLY|O_NONBLOCK) through the mount");
    assert_errno(
        open_raw(&s.s("fifo"), libc::O_WRONLY | libc::O_NONBLOCK),
        libc::ENXIO,
        "SOURCE's fifo has no reader while the view's is open",
    );
    drop(reader);
    let a = s.m("a.txt");
    let meta = within(
        Duration::from_secs(10),
        "stat after opening the fifo",
        move || fs::metadata(&a),
    );
    assert!(meta.unwrap().is_file());
    assert_visible(&s, "a.txt");
}

#[test]
fn char_device_is_listed_but_never_opened() {
    let s = Scene::new();
    s.file("a.txt");
    mknod(&s.s("null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3))
        .expect("mknod a char device in SOURCE (needs root)");
    let _m = s.mount(&[]);
    assert!(
        listing(&s.mnt).iter().any(|n| n == "null"),
        "device node is listed"
    );
    let meta = fs::symlink_metadata(s.m("null")).unwrap();
    assert!(meta.file_type().is_char_device(), "type of the device node");
    for flags in [
        libc::O_RDONLY,
        libc::O_RDONLY | libc::O_NONBLOCK,
        libc::O_WRONLY,
    ] {
        let dev = s.m("null");
        let res = within(Duration::from_secs(10), "open the device node", move || {
            open_raw(&dev, flags).map(drop)
        });
        assert!(
            res.is_err(),
            "opening a device node through the mount (flags {flags:#x}) succeeded"
        );
    }
    let a = s.m("a.txt");
    let meta = within(
        Duration::from_secs(10),
        "stat after the device",
        move || fs::metadata(&a),
    );
    assert!(meta.unwrap().is_file());
    assert_visible(&s, "a.txt");
}

// --- names --------------------------------------------------------------------------------------

#[test]
fn name_of_255_bytes_works_and_256_is_too_long() {
    let s = Scene::new();
    let long = format!("{}.txt", "n".repeat(251));
    assert_eq!(long.len(), 255);
    s.file(&long);
    s.file(format!("sub/{long}"));
    let _m = s.mount(&[]);
    assert_visible(&s, &long);
    assert_visible(&s, format!("sub/{long}"));
    let too_long = format!("{}.txt", "n".repeat(252));
    assert_eq!(too_long.len(), 256);
    assert_errno(
        fs::symlink_metadata(s.m(&too_long)),
        libc::ENAMETOOLONG,
        "lstat of a 256-byte name",
    );
    assert_errno(
        fs::File::open(s.m(&too_long)),
        libc::ENAMETOOLONG,
        "open of a 256-byte name",
    );
}

#[test]
fn non_utf8_names_are_listed_and_readable() {
    let s = Scene::new();
    let name = os(b"caf\xe9-\xff.txt");
    let dir = os(b"d\xfe\xfd");
    s.file(&name);
    s.file(Path::new(&dir).join(&name));
    let _m = s.mount(&[]);
    assert!(listing(&s.mnt).contains(&name), "non-UTF-8 file listed");
    assert!(listing(&s.mnt).contains(&dir), "non-UTF-8 dir listed");
    assert_visible(&s, &name);
    assert_visible(&s, Path::new(&dir).join(&name));
}

// --- metadata -----------------------------------------------------------------------------------

#[test]
fn synthetic_inode_numbers_say_nothing_of_sources() {
    let s = Scene::new();
    s.file(".env");
    for i in 0..5 {
        s.file(format!("f{i}.txt"));
    }
    s.file("sub/g.txt");
    let policy = s.policy("[view]\ninodes = \"synthetic\"\n");
    let _m = s.mount(&["-c", policy.to_str().unwrap()]);
    let hidden_ino = fs::symlink_metadata(s.s(".env")).unwrap().ino();
    for rel in [
        "f0.txt",
        "f1.txt",
        "f2.txt",
        "f3.txt",
        "f4.txt",
        "sub",
        "sub/g.txt",
    ] {
        let real = fs::symlink_metadata(s.s(rel)).unwrap().ino();
        let view = fs::symlink_metadata(s.m(rel)).unwrap().ino();
        assert_ne!(view, real, "inode number of {rel} passed through unchanged");
        assert_ne!(
            view, hidden_ino,
            "{rel} carries the hidden .env's inode number"
        );
    }
    // find -inum of the hidden file's inode finds nothing.
    let out = Command::new("find")
        .arg(&s.mnt)
        .arg("-inum")
        .arg(hidden_ino.to_string())
        .output()
        .expect("run find");
    assert!(out.status.success(), "find: {out:?}");
    assert!(out.stdout.is_empty(), "find -inum matched: {:?}", out);
}

#[test]
fn statfs_answers() {
    let s = Scene::new();
    s.file("a.txt");
    let _m = s.mount(&[]);
    let st = statvfs(&s.mnt).expect("statvfs on the mount");
    assert!(st.f_bsize > 0, "f_bsize");
    assert!(
        st.f_flag & libc::ST_RDONLY != 0,
        "statvfs reports read-only"
    );
    let out = Command::new("df")
        .arg("-P")
        .arg(&s.mnt)
        .output()
        .expect("run df");
    assert!(out.status.success(), "df: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(s.mnt.to_str().unwrap()),
        "df names the mountpoint:\n{text}"
    );
    // The file counts say nothing of SOURCE: files it gains (hidden ones here) leave them as
    // they were.
    for i in 0..50 {
        s.file(format!(".env.{i}"));
    }
    let after = statvfs(&s.mnt).expect("statvfs on the mount");
    assert_eq!(
        (after.f_files, after.f_ffree, after.f_favail),
        (st.f_files, st.f_ffree, st.f_favail),
        "file counts changed with SOURCE's hidden files"
    );
}

#[test]
fn only_user_xattrs_pass() {
    let s = Scene::new();
    let a = s.file("a.txt");
    lsetxattr(&a, b"user.x", b"hello").expect("set user.x in SOURCE");
    lsetxattr(&a, b"trusted.t", b"root-only").expect("set trusted.t in SOURCE (root)");
    lsetxattr(&a, b"security.s", b"lsm").unwrap_or_else(|e| {
        panic!(
            "set security.s in SOURCE ({}): {e}; this test needs a SOURCE file system that \
             stores security.* attributes for root (ext4, tmpfs, xfs, btrfs do)",
            a.display()
        )
    });
    s.dir("d");
    lsetxattr(&s.s("d"), b"user.dir", b"on-a-dir").expect("set user.dir");
    let _m = s.mount(&[]);
    assert_eq!(lgetxattr(&s.m("a.txt"), b"user.x").unwrap(), b"hello");
    assert_eq!(getxattr(&s.m("a.txt"), b"user.x").unwrap(), b"hello");
    assert_eq!(lgetxattr(&s.m("d"), b"user.dir").unwrap(), b"on-a-dir");
    assert_errno(
        lgetxattr(&s.m("a.txt"), b"user.missing"),
        libc::ENODATA,
        "getxattr of an absent user attribute",
    );
    assert_errno(
        lgetxattr(&s.m("a.txt"), b"trusted.t"),
        libc::ENODATA,
        "getxattr trusted.t",
    );
    assert_errno(
        lgetxattr(&s.m("a.txt"), b"security.s"),
        libc::ENODATA,
        "getxattr security.s",
    );
    let names = llistxattr(&s.m("a.txt")).unwrap();
    assert_eq!(
        names,
        vec![b"user.x".to_vec()],
        "listxattr through the mount"
    );
}

// --- changes in SOURCE while mounted ----------------------------------------------------------

/// Polls `check` for up to ~3 s (kernel entry and attribute caches expire), returning the
/// first `Ok` or the last error message.
fn eventually(mut check: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn files_created_after_mount_follow_the_policy() {
    let s = Scene::new();
    s.file("a.txt");
    s.dir("sub");
    let _m = s.mount(&[]);
    assert_listing(&s.mnt, &["a.txt", "sub"]);
    // Names never looked up before, so no negative entry is cached for them.
    s.file_with(".env", b"LATE_SECRET=1\n");
    s.file("sub/.env.local");
    s.file("sub/id_rsa");
    s.file("new.txt");
    assert_hidden(&s.mnt, ".env");
    assert_hidden(&s.mnt, "sub/.env.local");
    assert_hidden(&s.mnt, "sub/id_rsa");
    assert_visible(&s, "new.txt");
    eventually(|| {
        let names = listing(&s.mnt);
        if names == ["a.txt", "new.txt", "sub"] {
            Ok(())
        } else {
            Err(format!("root lists {names:?}"))
        }
    })
    .unwrap();
    assert_listing(&s.m("sub"), &[]);
}

#[test]
fn hardlink_to_hidden_file_created_after_mount_is_hidden() {
    let s = Scene::new();
    s.file_with(".env", b"API_KEY=hunter2\n");
    s.file("a.txt");
    let _m = s.mount(&[]);
    assert_hidden(&s.mnt, ".env");
    fs::hard_link(s.s(".env"), s.s("late.txt")).unwrap();
    s.dir("sub");
    fs::hard_link(s.s(".env"), s.s("sub/late2.txt")).unwrap();
    assert_hidden(&s.mnt, "late.txt");
    assert_hidden(&s.mnt, "sub/late2.txt");
    assert_visible(&s, "a.txt");
}

/// The views whose opens reach the daemon differently, as (name, policy file, flags): the
/// default read-only view (no `open` at all: each read the cache cannot answer is checked),
/// `--cache never` (every open is checked), deny with an audit log (not `ro`; read-only opens
/// are checked, then passed through to a backing file shared by the node's opens) and an
/// overlay view (opens checked, no passthrough).
fn open_path(variant: usize, s: &Scene) -> (&'static str, String, Vec<String>) {
    let log = s.base().join("audit.jsonl");
    let overlay = s.base().join("overlay");
    let mut variants = vec![
        ("read-only, no opens", String::new(), vec![]),
        (
            "--cache never",
            String::new(),
            vec!["--cache".into(), "never".into()],
        ),
        (
            "deny with an audit log (passthrough)",
            String::new(),
            vec!["--audit-log".into(), log.display().to_string()],
        ),
        (
            "overlay",
            format!(
                "[writes]\nmode = \"overlay\"\noverlay = {:?}\n",
                overlay.display().to_string()
            ),
            vec![],
        ),
    ];
    variants.swap_remove(variant)
}

/// How many variants [`open_path`] knows.
const OPEN_PATHS: usize = 4;

/// A fresh open of the node `held` (an `O_PATH` descriptor) fails as for a name that does
/// not exist, or serves anything but `secret`.
fn reopen_refused(held: &fs::File, secret: &[u8], what: &str) -> Result<(), String> {
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(held));
    match fs::read(&path) {
        Err(e) if [libc::ENOENT, libc::ESTALE].contains(&e.raw_os_error().unwrap_or_default()) => {
            Ok(())
        }
        Err(e) => Err(format!(
            "{what}: reopen of the held node failed with an unexpected {e}"
        )),
        Ok(data) => {
            assert_ne!(
                data, secret,
                "{what}: the held node served the now-hidden content"
            );
            Err(format!("{what}: reopen of the held node still works"))
        }
    }
}

/// Mounts variant `variant` of [`open_path`], holds README.md open (an `O_PATH` descriptor
/// for fresh opens, and a read descriptor that keeps an open handle and, with passthrough,
/// the backing file), lets `hide` make it secret and hidden, and checks that a fresh open of
/// the held node is refused.
fn held_file_hidden(variant: usize, hide: impl FnOnce(&Scene, i32)) {
    let s = Scene::new();
    let (what, policy, args) = open_path(variant, &s);
    s.file_with("README.md", b"public readme\n");
    s.file("a.txt");
    let policy = s.policy(&policy);
    let mut all = vec!["-c".to_owned(), policy.display().to_string()];
    all.extend(args.iter().cloned());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let m = s.mount(&all);
    let held = open_raw(&s.m("README.md"), libc::O_PATH).expect("O_PATH open of README.md");
    let open = fs::File::open(s.m("README.md")).expect("open README.md");
    // Before: the fresh open works, so a refusal after is the check's doing.
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
    assert_eq!(fs::read(&path).unwrap(), b"public readme\n", "{what}");

    hide(&s, m.pid);

    assert_hidden(&s.mnt, ".env");
    eventually(|| match fs::symlink_metadata(s.m("README.md")) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => Err(format!("{what}: lstat README.md: {other:?}")),
    })
    .unwrap();
    eventually(|| reopen_refused(&held, b"SECRET=now-a-secret\n", what)).unwrap();
    drop(open);
    reopen_refused(&held, b"SECRET=now-a-secret\n", what).unwrap();
    assert_visible(&s, "a.txt");
}

#[test]
fn file_renamed_to_a_hidden_name_while_held_is_no_longer_served() {
    for variant in 0..OPEN_PATHS {
        held_file_hidden(variant, |s, _| {
            // The host turns it into a secret under the agent's feet.
            fs::write(s.s("README.md"), b"SECRET=now-a-secret\n").unwrap();
            fs::rename(s.s("README.md"), s.s(".env")).unwrap();
        });
    }
}

/// The name stays where it is and the policy changes: the per-open check must refuse the
/// held node because of what its path now is, not because the path went away.
#[test]
fn file_a_reload_hides_while_held_is_no_longer_served() {
    for variant in 0..OPEN_PATHS {
        held_file_hidden(variant, |s, pid| {
            fs::write(s.s(".env"), b"SECRET=now-a-secret\n").unwrap();
            fs::write(s.s("README.md"), b"SECRET=now-a-secret\n").unwrap();
            let (_, policy, _) = open_path(variant, s);
            s.policy(&format!("[view]\nhide = [\"README.md\"]\n{policy}"));
            signal(pid, libc::SIGHUP);
        });
    }
}

#[test]
fn concurrent_readers_with_several_threads() {
    let s = Scene::new();
    for i in 0..50 {
        s.file(format!("d{}/f{i}.txt", i % 5));
    }
    s.file(".env");
    let _m = s.mount(&["--threads", "4"]);
    let mnt = s.mnt.clone();
    let src = s.src.clone();
    let readers: Vec<_> = (0..8)
        .map(|t| {
            let (mnt, src) = (mnt.clone(), src.clone());
            thread::spawn(move || {
                for round in 0..20 {
                    for i in 0..50 {
                        let rel = format!("d{}/f{i}.txt", i % 5);
                        let got = fs::read(mnt.join(&rel))
                            .unwrap_or_else(|e| panic!("reader {t} round {round} {rel}: {e}"));
                        assert_eq!(got, fs::read(src.join(&rel)).unwrap(), "{rel}");
                    }
                    assert_errno(
                        fs::read(mnt.join(".env")),
                        libc::ENOENT,
                        "concurrent read of .env",
                    );
                }
            })
        })
        .collect();
    for r in readers {
        within(Duration::from_secs(120), "concurrent readers", move || {
            r.join().is_ok()
        })
        .then_some(())
        .expect("a reader thread failed");
    }
}

// --- more of the adversarial catalogue ----------------------------------------------------------

#[test]
fn large_directory_lists_exactly_the_visible_entries() {
    let s = Scene::new();
    let n = 3000;
    for i in 0..n {
        // Every other entry is hidden, so the daemon must filter across many readdir pages.
        let name = if i % 2 == 0 {
            format!("big/file-{i:05}-with-a-longish-name.txt")
        } else {
            format!("big/file-{i:05}-with-a-longish-name.pem")
        };
        s.file(name);
    }
    let _m = s.mount(&[]);
    let names = listing(&s.m("big"));
    let want: Vec<OsString> = (0..n)
        .step_by(2)
        .map(|i| OsString::from(format!("file-{i:05}-with-a-longish-name.txt")))
        .collect();
    assert_eq!(names.len(), want.len(), "number of entries listed");
    assert_eq!(names, want, "entries listed");
    // `ls -f` reads the directory with its own buffer size and keeps the raw order.
    let out = Command::new("ls")
        .arg("-f")
        .arg(s.m("big"))
        .output()
        .expect("run ls -f");
    assert!(out.status.success(), "ls -f: {out:?}");
    let mut ls: Vec<&[u8]> = out.stdout.split(|b| *b == b'\n').collect();
    ls.retain(|l| !l.is_empty() && *l != b"." && *l != b"..");
    ls.sort();
    ls.dedup();
    assert_eq!(ls.len(), want.len(), "ls -f lists each visible entry once");
}

/// openat(2) relative to a directory descriptor.
fn openat(dirfd: &impl std::os::fd::AsRawFd, name: &str, flags: i32) -> std::io::Result<fs::File> {
    use std::os::fd::FromRawFd;
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: c is NUL-terminated; the mode is used only with O_CREAT.
    let fd = unsafe {
        libc::openat(
            dirfd.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor owned by the File from here on.
    Ok(unsafe { fs::File::from_raw_fd(fd) })
}

#[test]
fn paths_longer_than_path_max_are_served() {
    use std::os::fd::AsRawFd;
    let s = Scene::new();
    s.file("a.txt");
    let name = "p".repeat(250);
    let levels = 24; // about 6,000 bytes of path, past PATH_MAX (4096)

    // Build the chain in SOURCE one component at a time.
    let mut dir = fs::File::open(&s.src).unwrap();
    for _ in 0..levels {
        let c = std::ffi::CString::new(name.clone()).unwrap();
        // SAFETY: c is NUL-terminated.
        let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
        assert_eq!(rc, 0, "mkdirat: {}", std::io::Error::last_os_error());
        dir = openat(&dir, &name, libc::O_DIRECTORY | libc::O_RDONLY).unwrap();
    }
    let mut leaf = openat(&dir, "leaf.txt", libc::O_CREAT | libc::O_WRONLY).unwrap();
    std::io::Write::write_all(&mut leaf, b"deep\n").unwrap();
    drop((leaf, dir));

    let _m = s.mount(&[]);
    let walk = || -> Result<String, String> {
        let mut dir = fs::File::open(&s.mnt).unwrap();
        for level in 1..=levels {
            let p = format!("/proc/self/fd/{}", dir.as_raw_fd());
            let names = listing(Path::new(&p));
            if !names.contains(&OsString::from(&name)) {
                return Err(format!("depth {level}: not listed ({names:?})"));
            }
            dir = openat(&dir, &name, libc::O_DIRECTORY | libc::O_RDONLY).map_err(|e| {
                format!(
                    "depth {level} ({} bytes of path) is listed, but opening it fails: {e}",
                    level * 251
                )
            })?;
        }
        let leaf =
            openat(&dir, "leaf.txt", libc::O_RDONLY).map_err(|e| format!("open the leaf: {e}"))?;
        std::io::read_to_string(leaf).map_err(|e| format!("read the leaf: {e}"))
    };
    let result = walk();
    // Whatever happened deep down, the daemon still answers.
    assert_visible(&s, "a.txt");
    assert_eq!(result, Ok("deep\n".to_owned()), "walking past PATH_MAX");
}

#[test]
fn unix_socket_is_listed_but_never_reaches_the_real_one() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let s = Scene::new();
    s.file("a.txt");
    let listener = UnixListener::bind(s.s("agent.sock")).expect("bind a socket in SOURCE");
    listener.set_nonblocking(true).unwrap();
    let _m = s.mount(&[]);
    let meta = fs::symlink_metadata(s.m("agent.sock")).expect("the socket is visible");
    assert!(meta.file_type().is_socket(), "type of agent.sock");
    let sock = s.m("agent.sock");
    let res = within(Duration::from_secs(10), "connect", move || {
        UnixStream::connect(&sock).map(drop)
    });
    assert_errno(res, libc::ECONNREFUSED, "connect through the mount");
    assert!(
        listener.accept().is_err(),
        "the real socket in SOURCE accepted a connection made through the mount"
    );
}

#[test]
fn posix_acls_and_system_xattrs_do_not_pass() {
    let s = Scene::new();
    let a = s.file("a.txt");
    // An extended ACL: user::rw- user:1000:r-- group::r-- mask::r-- other::r--.
    let mut acl = Vec::new();
    acl.extend_from_slice(&2u32.to_le_bytes());
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    lsetxattr(&a, b"system.posix_acl_access", &acl).expect("set an ACL in SOURCE");
    lsetxattr(&a, b"user.x", b"1").unwrap();
    let _m = s.mount(&[]);
    assert_errno(
        lgetxattr(&s.m("a.txt"), b"system.posix_acl_access"),
        libc::ENODATA,
        "getxattr system.posix_acl_access",
    );
    assert_eq!(
        llistxattr(&s.m("a.txt")).unwrap(),
        vec![b"user.x".to_vec()],
        "listxattr through the mount"
    );
}

#[test]
fn ioctls_answer_enotty() {
    use std::os::fd::AsRawFd;
    let s = Scene::new();
    s.file("a.txt");
    let _m = s.mount(&[]);
    let f = fs::File::open(s.m("a.txt")).unwrap();
    let mut flags: libc::c_long = 0;
    // FS_IOC_GETFLAGS, what lsattr and chattr use.
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    // SAFETY: the argument points to a c_long the kernel may write.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) };
    let res = if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(flags)
    };
    assert_errno(res, libc::ENOTTY, "FS_IOC_GETFLAGS through the mount");
    assert_visible(&s, "a.txt");
}
