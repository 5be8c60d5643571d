//! The directory walk: directories berth cannot walk are broken sources, never skipped, and
//! nothing outside the spec directory is followed or opened.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::Config;

const CONTAINER: &str = "[containers.app]\nimage = \"busybox:1.36\"\n";

/// A line that must never reach a diagnostic: if the file holding it were read, the TOML parse
/// error would quote it (secret masking covers `key = value` lines, not a bare key block).
const SECRET: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

fn link(target: impl AsRef<Path>, at: &Path) {
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    symlink(target, at).unwrap_or_else(|e| panic!("link {}: {e}", at.display()));
}

fn load(dir: &Path) -> Loaded {
    load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Every diagnostic rendered, with `base` (and its real path) replaced by `<tmp>`.
fn rendered(base: &Path, loaded: &Loaded) -> String {
    loaded
        .diagnostics
        .iter()
        .map(|d| d.render(false))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&real(base).display().to_string(), "<tmp>")
        .replace(&base.display().to_string(), "<tmp>")
}

fn broken_dirs(loaded: &Loaded) -> Vec<&str> {
    loaded
        .broken_dirs
        .iter()
        .map(|b| b.source_path.to_str().unwrap_or("?"))
        .collect()
}

fn app_names(loaded: &Loaded) -> Vec<&str> {
    loaded.apps.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn a_dangling_symlinked_directory_is_a_broken_dir() {
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "web.toml", CONTAINER);
    link("gone", &dir.join("team-a"));
    link("../gone", &dir.join("nested/conf.d"));
    // Dangling links named like non-spec files are taken for deleted files: ignored.
    link("gone.md", &dir.join("notes.md"));
    link("gone", &dir.join("web.toml~"));
    link("gone", &dir.join(".hidden"));

    let loaded = load(dir);
    assert!(loaded.has_errors());
    assert!(loaded.broken.is_empty(), "{:?}", loaded.broken);
    assert_eq!(
        loaded.broken_dirs,
        [
            BrokenDir {
                path: dir.join("nested/conf.d"),
                source_path: PathBuf::from("nested/conf.d"),
            },
            BrokenDir {
                path: dir.join("team-a"),
                source_path: PathBuf::from("team-a"),
            },
        ]
    );
    assert_eq!(app_names(&loaded), ["web"], "the other apps go on");
    assert_eq!(loaded.errors(), 2);
    assert!(loaded.diagnostics.iter().all(|d| d.rule == "read-error"));
    assert_eq!(
        rendered(dir, &loaded),
        "\
error[read-error]: cannot walk this directory: it is a dangling symbolic link (../gone does not exist)
  --> <tmp>/nested/conf.d
  = help: point the link at a directory inside the spec directory, or remove the link if its apps are meant to be removed; until then every app whose spec file lies under it is left as it is in the cluster

error[read-error]: cannot walk this directory: it is a dangling symbolic link (gone does not exist)
  --> <tmp>/team-a
  = help: point the link at a directory inside the spec directory, or remove the link if its apps are meant to be removed; until then every app whose spec file lies under it is left as it is in the cluster
"
    );
}

#[test]
fn looping_symlinked_directories_are_broken_dirs_and_nothing_is_read_twice() {
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "web.toml", CONTAINER);
    write(dir, "team/db.toml", CONTAINER);
    // A link to itself: the system cannot follow it (ELOOP).
    link("loop", &dir.join("loop"));
    // A link back to a directory that contains it: it resolves, but walking it never ends (and
    // used to read web.toml and team/db.toml again down to the depth limit).
    link("..", &dir.join("team/up"));
    // Two links that lead to each other's directory.
    link("../b", &dir.join("a/to-b"));
    link("../a", &dir.join("b/to-a"));

    let loaded = load(dir);
    assert_eq!(
        broken_dirs(&loaded),
        ["a/to-b/to-a", "b/to-a/to-b", "loop", "team/up"]
    );
    assert!(loaded.broken.is_empty(), "{}", rendered(dir, &loaded));
    assert_eq!(app_names(&loaded), ["db", "web"]);
    assert_eq!(loaded.files, 2, "each spec is read once");
    let text = rendered(dir, &loaded);
    assert!(
        text.contains(
            "error[read-error]: cannot walk this directory: it is a symbolic link loop \
             (Too many levels of symbolic links (os error 40))\n  --> <tmp>/loop\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "error[read-error]: cannot walk this directory: it is a symbolic link loop \
             (it leads to <tmp>, which contains the link)\n  --> <tmp>/team/up\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "= help: a link to a directory that contains it would be walked forever; point it \
             elsewhere or remove it; until then every app whose spec file lies under it is left \
             as it is in the cluster"
        ),
        "{text}"
    );
}

#[test]
fn a_directory_deeper_than_the_limit_is_a_broken_dir() {
    let tmp = tempdir();
    let dir = tmp.path();
    let deepest_walked = vec!["d"; MAX_DEPTH].join("/");
    write(dir, &format!("{deepest_walked}/ok.toml"), CONTAINER);
    write(dir, &format!("{deepest_walked}/d/deep.toml"), CONTAINER);

    let loaded = load(dir);
    assert_eq!(app_names(&loaded), ["ok"], "{MAX_DEPTH} levels are walked");
    let too_deep = format!("{deepest_walked}/d");
    assert_eq!(broken_dirs(&loaded), [too_deep.as_str()]);
    assert!(loaded.has_errors());
    assert_eq!(
        rendered(dir, &loaded),
        format!(
            "error[read-error]: cannot walk this directory: it is deeper than 16 levels below \
             the spec directory\n  --> <tmp>/{too_deep}\n  = help: berth walks at most 16 \
             levels of subdirectories; move its spec files up; until then every app whose spec \
             file lies under it is left as it is in the cluster\n"
        )
    );
}

#[test]
fn a_symlinked_directory_outside_the_spec_directory_is_a_broken_dir_and_not_walked() {
    let tmp = tempdir();
    let dir = tmp.path().join("specs");
    write(tmp.path(), "outside/web.toml", CONTAINER);
    write(tmp.path(), "outside/readme.txt", "not a spec");
    write(&dir, "db.toml", CONTAINER);
    link("../outside", &dir.join("team"));
    // Through an in-tree link, then out: the real path decides.
    link("../../outside", &dir.join("inner/up"));
    link("inner/up", &dir.join("via-inner"));
    // A link out of the tree to a file not named like a spec is ignored, like any such file.
    link("../outside/readme.txt", &dir.join("README"));

    let loaded = load(&dir);
    assert_eq!(broken_dirs(&loaded), ["inner/up", "team", "via-inner"]);
    assert_eq!(app_names(&loaded), ["db"], "outside/web.toml is not read");
    assert_eq!(loaded.files, 1);
    let text = rendered(tmp.path(), &loaded);
    assert!(
        text.contains(
            "error[read-error]: cannot walk this directory: it resolves outside the spec \
             directory (<tmp>/outside is not under <tmp>/specs)\n  --> <tmp>/specs/team\n  \
             = help: berth reads nothing outside the spec directory; move the directory into it, \
             or point the link at a directory inside it; until then every app whose spec file \
             lies under it is left as it is in the cluster\n"
        ),
        "{text}"
    );
}

#[test]
fn a_symlinked_spec_file_outside_the_spec_directory_is_refused_and_never_printed() {
    let tmp = tempdir();
    let dir = tmp.path().join("specs");
    let key = tmp.path().join("home/.ssh/id_ed25519");
    write(
        tmp.path(),
        "home/.ssh/id_ed25519",
        &format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n-----END OPENSSH PRIVATE KEY-----\n"
        ),
    );
    write(&dir, "web.toml", CONTAINER);
    link(&key, &dir.join("key.toml"));
    link("../../home/.ssh/id_ed25519", &dir.join("team/db.toml"));
    // The test means something: followed, the link does lead to the key's text.
    let followed =
        read_spec(&dir.join("key.toml")).unwrap_or_else(|d| panic!("{}", d.render(false)));
    assert!(followed.contains(SECRET));

    let loaded = load(&dir);
    assert!(loaded.has_errors());
    assert!(loaded.broken_dirs.is_empty());
    assert_eq!(
        loaded.broken,
        [
            BrokenSpec {
                path: dir.join("key.toml"),
                source_path: PathBuf::from("key.toml"),
                namespace: None,
                name: "key".into(),
            },
            BrokenSpec {
                path: dir.join("team/db.toml"),
                source_path: PathBuf::from("team/db.toml"),
                namespace: None,
                name: "db".into(),
            },
        ]
    );
    assert_eq!(app_names(&loaded), ["web"]);
    assert_eq!(loaded.files, 3);
    let text = rendered(tmp.path(), &loaded);
    for needle in [SECRET, "PRIVATE KEY", "OPENSSH"] {
        assert!(!text.contains(needle), "{needle} printed:\n{text}");
        let debug = format!("{loaded:?}");
        assert!(!debug.contains(needle), "{needle} kept in the load");
    }
    assert_eq!(
        text,
        "\
error[read-error]: the file resolves outside the spec directory (<tmp>/home/.ssh/id_ed25519 is not under <tmp>/specs); it is not read
  --> <tmp>/specs/key.toml
  = help: berth reads no file outside the spec directory, so a link can never expose a key or another file in a diagnostic or a log; copy the spec into the spec directory or point the link at a file inside it; until then the app of this file is left as it is in the cluster

error[read-error]: the file resolves outside the spec directory (<tmp>/home/.ssh/id_ed25519 is not under <tmp>/specs); it is not read
  --> <tmp>/specs/team/db.toml
  = help: berth reads no file outside the spec directory, so a link can never expose a key or another file in a diagnostic or a log; copy the spec into the spec directory or point the link at a file inside it; until then the app of this file is left as it is in the cluster
"
    );
}

#[test]
fn symlinks_inside_the_tree_are_followed_and_the_spec_directory_may_be_a_symlink() {
    let tmp = tempdir();
    // git-sync's layout: the spec directory is a link to the current checkout, whose specs may
    // link to each other; hidden directories are not walked themselves.
    let checkout = tmp.path().join("rev-1");
    write(&checkout, ".store/db.toml", CONTAINER);
    write(&checkout, ".store/bad.toml", "replicas = [\n");
    write(&checkout, "shared/cache.toml", CONTAINER);
    link(".store", &checkout.join("team"));
    link("shared/cache.toml", &checkout.join("web.toml"));
    let dir = tmp.path().join("current");
    link("rev-1", &dir);

    let loaded = load(&dir);
    assert!(
        loaded.broken_dirs.is_empty(),
        "{}",
        rendered(tmp.path(), &loaded)
    );
    let sources: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.source_path.to_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        sources,
        [
            ("cache", "shared/cache.toml"),
            ("db", "team/db.toml"),
            ("web", "web.toml")
        ]
    );
    // Problems are reported by the path the user knows, not the real one.
    assert_eq!(loaded.broken.len(), 1);
    assert_eq!(loaded.broken[0].path, dir.join("team/bad.toml"));
    assert_eq!(loaded.broken[0].source_path, Path::new("team/bad.toml"));
    assert!(
        loaded
            .diagnostics
            .iter()
            .all(|d| d.path == dir.join("team/bad.toml")),
        "{:?}",
        loaded.diagnostics
    );
}

#[test]
fn a_directory_berth_may_not_read_is_a_broken_dir() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "web.toml", CONTAINER);
    write(dir, "team/db.toml", CONTAINER);
    write(dir, "team/sub/x.toml", CONTAINER);
    // Listed but not entered: the names are there, the files cannot be opened.
    write(dir, "ops/cache.toml", CONTAINER);
    write(dir, "ops/sub/y.toml", CONTAINER);
    let mode = |m| {
        for (d, mode) in [("team", m), ("ops", m | 0o444)] {
            std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    mode(0o000);
    // Tests usually run as root, and root reads a mode-000 directory anyway (libc is not a
    // dependency, so there is no geteuid to ask): ask the file system instead, and check EACCES
    // only where it is denied.
    let denied = std::fs::read_dir(dir.join("team")).is_err();
    let loaded = load(dir);
    mode(0o755); // so the temp dir can be removed
    if !denied {
        eprintln!("skipped: this user may read a mode-000 directory (root)");
        return;
    }
    assert_eq!(broken_dirs(&loaded), ["ops", "team"]);
    assert!(loaded.broken.is_empty(), "{:?}", loaded.broken);
    assert_eq!(app_names(&loaded), ["web"]);
    assert!(loaded.has_errors());
    let help = "= help: let the user berth runs as read and enter the directory (mode r-x); until \
                then every app whose spec file lies under it is left as it is in the cluster\n";
    assert_eq!(
        rendered(dir, &loaded),
        format!(
            "error[read-error]: cannot walk this directory: permission denied\n  --> <tmp>/ops\n  \
             {help}\nerror[read-error]: cannot walk this directory: permission denied\n  --> \
             <tmp>/team\n  {help}"
        )
    );
}

#[test]
fn a_cached_reload_equals_a_fresh_load_with_broken_dirs_and_links_out() {
    let tmp = tempdir();
    let dir = tmp.path().join("specs");
    let config = Config::default();
    write(&dir, "web.toml", CONTAINER);
    write(&dir, "shared/db.toml", CONTAINER);
    write(
        tmp.path(),
        "outside/db.toml",
        &format!("# {SECRET}\n{CONTAINER}"),
    );
    link("shared/db.toml", &dir.join("db-link.toml"));
    let mut cache = SpecCache::default();
    let first = load_dir_cached(&dir, &config, &mut cache).unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.has_errors());

    let same = |cached: &Loaded| {
        let fresh = load_dir(&dir, &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cached.broken_dirs, fresh.broken_dirs);
        assert_eq!(cached.broken, fresh.broken);
        assert_eq!(cached.apps, fresh.apps);
        assert_eq!(cached.diagnostics, fresh.diagnostics);
        assert_eq!(cached.files, fresh.files);
        assert_eq!(cached.has_errors(), fresh.has_errors());
    };

    // A directory breaks, and a cached link is retargeted out of the tree with the same text
    // behind it: the cache must not let it through.
    std::fs::rename(dir.join("shared"), tmp.path().join("moved")).unwrap_or_else(|e| panic!("{e}"));
    link("../moved", &dir.join("shared"));
    std::fs::remove_file(dir.join("db-link.toml")).unwrap_or_else(|e| panic!("{e}"));
    link("../outside/db.toml", &dir.join("db-link.toml"));
    link("gone", &dir.join("team"));
    let broken = load_dir_cached(&dir, &config, &mut cache).unwrap_or_else(|e| panic!("{e}"));
    same(&broken);
    assert_eq!(broken_dirs(&broken), ["shared", "team"]);
    assert_eq!(broken.broken.len(), 1);
    assert_eq!(broken.broken[0].source_path, Path::new("db-link.toml"));
    assert!(!format!("{broken:?}").contains(SECRET));

    // Fixed again: the cached load agrees, and nothing broken is left over.
    std::fs::remove_file(dir.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(tmp.path().join("moved"), dir.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(dir.join("team")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(dir.join("db-link.toml")).unwrap_or_else(|e| panic!("{e}"));
    let fixed = load_dir_cached(&dir, &config, &mut cache).unwrap_or_else(|e| panic!("{e}"));
    same(&fixed);
    assert!(!fixed.has_errors());
    assert!(fixed.broken_dirs.is_empty());
    assert_eq!(app_names(&fixed), ["db", "web"]);
}

#[test]
fn a_spec_file_that_cannot_be_read_is_reported_by_read_spec() {
    // Tests run as root, so a mode-000 file is still readable: /proc/self/mem is a regular file
    // whose read fails (EIO), the same path as a permission error for a non-root daemon. It is
    // outside any spec directory, so `load_dir` would refuse it unread; `read_spec` reads it.
    let err = match read_spec(Path::new("/proc/self/mem")) {
        Ok(_) => panic!("/proc/self/mem read"),
        Err(d) => d.render(false),
    };
    assert_eq!(
        err,
        "error[read-error]: cannot read the file: Input/output error (os error 5)\n  --> \
         /proc/self/mem\n  = help: check that the file is readable by the user berth runs as\n"
    );
}

// ---- `after`: the apps it names exist, and none wait for each other in a circle ----

#[test]
fn after_names_apps_of_the_directory_relative_to_the_apps_namespace() {
    let dir = tempdir();
    write(
        dir.path(),
        "zookeeper.toml",
        &format!("namespace = \"zk\"\n{CONTAINER}"),
    );
    write(dir.path(), "mysql.toml", CONTAINER);
    write(
        dir.path(),
        "kafka.toml",
        &format!("after = [\"zk/zookeeper\", \"mysql\"]\n{CONTAINER}"),
    );
    let loaded = load(dir.path());
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        rendered(dir.path(), &loaded)
    );
    let kafka = loaded
        .apps
        .iter()
        .find(|a| a.name == "kafka")
        .unwrap_or_else(|| panic!("kafka loads"));
    let named: Vec<String> = kafka.after.iter().map(|d| d.key().to_string()).collect();
    assert_eq!(named, ["zk/zookeeper", "default/mysql"]);
}

#[test]
fn after_naming_an_unknown_app_is_an_error_at_the_entry() {
    let dir = tempdir();
    write(
        dir.path(),
        "zookeeper.toml",
        &format!("namespace = \"zk\"\n{CONTAINER}"),
    );
    write(
        dir.path(),
        "kafka.toml",
        &format!("after = [\"zk/zookeper\"]\n{CONTAINER}"),
    );
    let loaded = load(dir.path());
    let text = rendered(dir.path(), &loaded);
    assert!(
        text.contains("error[after-unknown]: `after` names `zk/zookeper`, which no spec in the directory declares"),
        "{text}"
    );
    assert!(text.contains("kafka.toml:1:10"), "{text}");
    assert_eq!(
        loaded.broken.len(),
        1,
        "kafka is refused, its live app left alone"
    );
    assert_eq!(loaded.apps.len(), 1);
}

#[test]
fn apps_that_wait_for_each_other_are_refused_with_the_circle() {
    let dir = tempdir();
    write(
        dir.path(),
        "a.toml",
        &format!("after = [\"b\"]\n{CONTAINER}"),
    );
    write(
        dir.path(),
        "b.toml",
        &format!("after = [\"c\"]\n{CONTAINER}"),
    );
    write(
        dir.path(),
        "c.toml",
        &format!("after = [\"a\"]\n{CONTAINER}"),
    );
    write(
        dir.path(),
        "d.toml",
        &format!("after = [\"a\"]\n{CONTAINER}"),
    );
    let loaded = load(dir.path());
    let text = rendered(dir.path(), &loaded);
    assert_eq!(
        text.matches("error[after-cycle]: apps wait for each other: default/a → default/b → default/c → default/a")
            .count(),
        3,
        "{text}"
    );
    let apps: Vec<&str> = loaded.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(apps, ["d"], "only the app outside the circle loads");
    // An app cannot wait for itself either; that one is caught in its own file.
    write(
        dir.path(),
        "a.toml",
        &format!("after = [\"a\"]\n{CONTAINER}"),
    );
    let loaded = load(dir.path());
    assert!(
        rendered(dir.path(), &loaded).contains("an app cannot wait for itself"),
        "{}",
        rendered(dir.path(), &loaded)
    );
}

#[test]
fn a_large_directory_checked_on_every_core_loads_as_one_checked_file_by_file() {
    let dir = tempdir();
    // Enough files for several threads, with what the order of diagnostics and the rules
    // across files depend on: broken files, and two files that declare the same app.
    for i in 0..3 * FILES_PER_THREAD {
        let text = match i % 97 {
            0 => "replicas = \"three\"\n".to_string(),
            1 => format!("name = \"twin\"\n{CONTAINER}"),
            _ => format!("namespace = \"ns-{}\"\n{CONTAINER}", i % 5),
        };
        write(
            dir.path(),
            &format!("team-{}/app-{i:04}.toml", i % 3),
            &text,
        );
    }
    let parallel = load(dir.path());
    let one_by_one =
        load_dir_cached(dir.path(), &Config::default(), &mut SpecCache::default()).expect("load");

    assert_eq!(parallel.files, 3 * FILES_PER_THREAD);
    assert_eq!(parallel.apps, one_by_one.apps);
    assert_eq!(parallel.broken, one_by_one.broken);
    assert_eq!(
        rendered(dir.path(), &parallel),
        rendered(dir.path(), &one_by_one)
    );
    assert!(parallel.broken.len() >= 8, "{:?}", parallel.broken);
    assert!(!parallel.apps.iter().any(|a| a.name == "twin"));
}

#[test]
fn a_loaded_app_holds_no_spare_room_in_its_lists() {
    let dir = tempdir();
    write(
        dir.path(),
        "db.toml",
        "[containers.app]\nimage = \"busybox:1.36\"\nports = { http = 8080, metrics = 9090 }\n\
         env = { A = \"1\" }\nmounts = { data = \"/data\" }\n\
         [volumes.data]\nsize = \"1Gi\"\n[service]\nports = { http = 8080 }\n",
    );
    let loaded = load(dir.path());
    let [app] = &loaded.apps[..] else {
        panic!("one app: {:?}", loaded.diagnostics);
    };
    let container = &app.containers[0];
    let lists = [
        (
            "containers",
            app.containers.len(),
            app.containers.capacity(),
        ),
        ("volumes", app.volumes.len(), app.volumes.capacity()),
        ("ports", container.ports.len(), container.ports.capacity()),
        ("env", container.env.len(), container.env.capacity()),
        (
            "mounts",
            container.mounts.len(),
            container.mounts.capacity(),
        ),
        (
            "service ports",
            app.service.as_ref().map_or(0, |s| s.ports.len()),
            app.service.as_ref().map_or(0, |s| s.ports.capacity()),
        ),
    ];
    for (list, len, capacity) in lists {
        assert!(len > 0, "{list} is read");
        assert_eq!(capacity, len, "{list}: room for {capacity}, {len} held");
    }
}
