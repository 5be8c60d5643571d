//! CLI tests: run the built `berth` binary on fixture directories and check exit codes and output.
//! No cluster needed: validate, render and schema are pure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn berth(args: &[&str]) -> Output {
    berth_env(args, &[])
}

fn berth_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    // The fixtures' config: the valid fixtures use a host path and a ServiceAccount that the
    // default `[safety]` lists refuse.
    cmd.args(args)
        .current_dir(root())
        .env("BERTH_CONFIG", "tests/fixtures/berth.toml")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running berth: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn validate_examples_exit_0() {
    let o = berth(&["validate", "config/apps"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4 specs checked: 4 valid, 0 invalid (0 errors, 0 warnings)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_warnings_only_exit_0() {
    let o = berth(&["validate", "tests/fixtures/valid"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("warning[image-tag]"), "{err}");
    assert!(err.contains("0 invalid (0 errors, 1 warning)"), "{err}");
}

#[test]
fn validate_invalid_exit_2_with_positions_and_fixes() {
    let o = berth(&["validate", "tests/fixtures/invalid"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("error[unknown-key]: unknown key `replica`"),
        "{err}"
    );
    assert!(
        err.contains("--> tests/fixtures/invalid/unknown-key.toml:1:1"),
        "{err}"
    );
    assert!(err.contains("= help: did you mean `replicas`?"), "{err}");
    assert!(err.contains("kubernetes issue 64023"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "no colour when stderr is not a terminal"
    );
    assert!(stdout(&o).is_empty());
    // Every bad fixture but the autopilot ones (valid under the default profile) is reported.
    assert!(err.contains("invalid ("), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("specs checked: 2 valid"), "{last}");
}

#[test]
fn validate_missing_dir_exit_2_empty_dir_warns() {
    let o = berth(&["validate", "no/such/dir"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("spec directory no/such/dir does not exist"),
        "{}",
        stderr(&o)
    );
    let tmp = tempdir();
    let dir = tmp.path().to_string_lossy().into_owned();
    let o = berth(&["validate", &dir]);
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("no spec files"), "{}", stderr(&o));
}

#[test]
fn validate_duplicate_apps_across_files() {
    let tmp = tempdir();
    let spec = "[containers.app]\nimage = \"busybox:1.36\"\n";
    std::fs::write(tmp.path().join("a.toml"), format!("name = \"b\"\n{spec}"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("b.toml"), spec).unwrap_or_else(|e| panic!("{e}"));
    let o = berth(&["validate", &tmp.path().to_string_lossy()]);
    assert_eq!(code(&o), 2);
    assert_eq!(
        stderr(&o)
            .matches("error[duplicate-app]: app `default/b`")
            .count(),
        2,
        "{}",
        stderr(&o)
    );
}

/// Split multi-document YAML and parse each document.
fn docs(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .collect()
}

#[test]
fn render_prints_yaml_for_kubectl() {
    let o = berth(&["render", "config/apps"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("---\napiVersion: v1\nkind: Service\n"),
        "{out}"
    );
    let docs = docs(&out);
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or_default(),
                d["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    // Sorted by namespace then name; per app: headless Service, StatefulSet, Service, PDB.
    assert_eq!(
        kinds,
        [
            "Service/mysql-headless",
            "StatefulSet/mysql",
            "Service/mysql-read",
            "PodDisruptionBudget/mysql",
            "Service/nginx-headless",
            "StatefulSet/nginx",
            "Service/redis-headless",
            "StatefulSet/redis",
            "Service/redis",
            "PodDisruptionBudget/redis",
            "Service/zookeeper-headless",
            "StatefulSet/zookeeper",
            "Service/zookeeper",
            "PodDisruptionBudget/zookeeper",
        ]
    );
    for d in &docs {
        assert_eq!(
            d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "berth"
        );
        assert_eq!(d["metadata"]["labels"]["berth.dev/instance"], "default");
        assert!(d["metadata"]["annotations"]["berth.dev/source"].is_string());
    }
    let nginx = &docs[5];
    assert_eq!(nginx["metadata"]["namespace"], "default");
    assert!(
        nginx["spec"]["template"]["spec"]["imagePullSecrets"].is_null(),
        "no config: no default pull secret"
    );
}

#[test]
fn render_uses_config_and_overrides() {
    let o = berth(&["--config", "config/berth.toml", "render", "config/apps"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d = docs(&stdout(&o));
    assert_eq!(
        d[5]["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "default-secret"
    );

    let o = berth_env(
        &[
            "render",
            "--namespace",
            "web",
            "--instance",
            "blue",
            "config/apps",
        ],
        &[("BERTH_CONFIG", "config/berth.toml")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d = docs(&stdout(&o));
    let nginx = d
        .iter()
        .find(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "nginx")
        .cloned()
        .unwrap_or_default();
    assert_eq!(nginx["metadata"]["namespace"], "web");
    assert_eq!(nginx["metadata"]["labels"]["berth.dev/instance"], "blue");
    assert_eq!(
        nginx["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "blue"
    );
    assert_eq!(
        nginx["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "default-secret"
    );
    // A spec's own namespace wins over the override of the default.
    let mysql = d
        .iter()
        .find(|d| d["kind"] == "StatefulSet" && d["metadata"]["name"] == "mysql")
        .cloned()
        .unwrap_or_default();
    assert_eq!(mysql["metadata"]["namespace"], "db");
}

#[test]
fn render_refuses_invalid_specs() {
    let tmp = tempdir();
    std::fs::copy(
        root().join("config/apps/nginx.toml"),
        tmp.path().join("nginx.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("bad.toml"), "replica = 2\n").unwrap_or_else(|e| panic!("{e}"));
    let o = berth(&["render", &tmp.path().to_string_lossy()]);
    assert_eq!(code(&o), 2);
    assert!(
        stdout(&o).is_empty(),
        "a partial render must not reach kubectl"
    );
    assert!(
        stderr(&o).contains("did you mean `replicas`?"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not rendering"), "{}", stderr(&o));
}

#[test]
fn a_large_fleet_renders_every_app_once_in_directory_order() {
    // More apps than one batch of the renderer (it renders batches on every core).
    const APPS: usize = 1300;
    let tmp = tempdir();
    for i in 0..APPS {
        std::fs::write(
            tmp.path().join(format!("app-{i:04}.toml")),
            "[containers.web]\nimage = \"nginx:1.27\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let o = berth(&["render", &tmp.path().to_string_lossy()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    // Each app is a headless Service and a StatefulSet, named after the app.
    let documents: Vec<&str> = out.split("---\n").filter(|d| !d.is_empty()).collect();
    assert_eq!(documents.len(), 2 * APPS);
    let apps_in_order: Vec<String> = documents
        .iter()
        .map(|d| {
            d.lines()
                .find_map(|l| l.strip_prefix("    app.kubernetes.io/name: "))
                .unwrap_or_else(|| panic!("no app label in {d}"))
                .to_string()
        })
        .collect();
    let expected: Vec<String> = (0..APPS)
        .flat_map(|i| [format!("app-{i:04}"), format!("app-{i:04}")])
        .collect();
    assert_eq!(apps_in_order, expected);
}

#[test]
fn bad_config_and_overrides_exit_2() {
    let tmp = tempdir();
    let cfg = tmp.path().join("berth.toml");
    std::fs::write(&cfg, "instanse = \"x\"\n").unwrap_or_else(|e| panic!("{e}"));
    let o = berth(&[
        "--config",
        &cfg.to_string_lossy(),
        "validate",
        "config/apps",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("did you mean `instance`?"),
        "{}",
        stderr(&o)
    );
    let o = berth(&["--namespace", "Not_Valid", "validate", "config/apps"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("invalid namespace `Not_Valid`"),
        "{}",
        stderr(&o)
    );
    let o = berth(&["--config", "no/such/berth.toml", "validate", "config/apps"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn autopilot_profile_from_config() {
    let tmp = tempdir();
    let cfg = tmp.path().join("berth.toml");
    std::fs::write(&cfg, "profile = \"autopilot\"\n").unwrap_or_else(|e| panic!("{e}"));
    let o = berth(&[
        "--config",
        &cfg.to_string_lossy(),
        "validate",
        "tests/fixtures/valid",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("error[profile-forbids]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schema_matches_the_checked_in_file() {
    let o = berth(&["schema"]);
    assert_eq!(code(&o), 0);
    let on_disk =
        std::fs::read_to_string(root().join("config/berth.schema.json")).unwrap_or_default();
    assert_eq!(stdout(&o), on_disk);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(v["additionalProperties"], false);
    assert!(Path::new(&root().join("config/apps/nginx.toml")).exists());
}

// ---- completions, status and import arguments, editor support (issue 7) ----

#[test]
fn completions_are_generated_for_each_shell_from_the_cli_definition() {
    for (shell, marker) in [
        ("bash", "_berth()"),
        ("zsh", "#compdef berth"),
        ("fish", "complete -c berth"),
        ("elvish", "edit:completion:arg-completer[berth]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = berth(&["completions", shell]);
        assert_eq!(code(&o), 0, "{shell}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains(marker), "{shell}: no {marker:?} in\n{out}");
        // Every subcommand is offered, including the newest.
        for sub in [
            "validate",
            "diff",
            "apply",
            "watch",
            "status",
            "import",
            "completions",
        ] {
            assert!(out.contains(sub), "{shell}: no {sub}");
        }
    }
    let o = berth(&["completions", "tcsh"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn import_argument_errors_exit_2_before_any_cluster_is_needed() {
    // No KUBECONFIG that could work: these must fail on the arguments alone.
    let env = [("KUBECONFIG", "/nonexistent/kubeconfig")];
    let cases: [(&[&str], &str); 5] = [
        (&["import"], "required arguments were not provided"),
        (&["import", "db/mysql", "-A"], "cannot be used with"),
        (
            &["import", "-n", "db", "--all-namespaces"],
            "cannot be used with",
        ),
        (&["import", "db/mysql/x"], "is not NAMESPACE/NAME"),
        (
            &["import", "db/mysql", "-n", "zk"],
            "names namespace db, but -n says another",
        ),
    ];
    for (args, want) in cases {
        let o = berth_env(args, &env);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn status_argument_errors_exit_2() {
    let env = [("KUBECONFIG", "/nonexistent/kubeconfig")];
    let o = berth_env(&["status", "-o", "yaml"], &env);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("invalid value 'yaml'"),
        "{}",
        stderr(&o)
    );
    let o = berth_env(&["status", "no/such/dir"], &env);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    // A cluster that cannot be reached is an error (2), never "not in sync" (1).
    let o = berth_env(&["status"], &env);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

fn spec_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("config/berth.schema.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    jsonschema::draft7::new(&schema).unwrap_or_else(|e| panic!("the schema itself: {e}"))
}

fn as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_and_valid_fixture_validates_against_the_json_schema() {
    let validator = schema_validator();
    let files: Vec<PathBuf> = spec_files("config/apps")
        .into_iter()
        .chain(spec_files("tests/fixtures/valid"))
        .collect();
    assert!(files.len() >= 12, "{files:?}");
    for path in files {
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&path))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    // The validator does reject: an unknown key and a wrong type are schema errors too.
    for bad in ["unknown-key.toml", "wrong-type.toml"] {
        let path = root().join("tests/fixtures/invalid").join(bad);
        assert!(
            !validator.is_valid(&as_json(&path)),
            "{bad} passed the schema"
        );
    }
}

#[test]
fn taplo_maps_spec_directories_to_the_schema() {
    let text =
        std::fs::read_to_string(root().join(".taplo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let config: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let rules = config["rule"]
        .as_array()
        .unwrap_or_else(|| panic!("no [[rule]]"));
    let rule = rules
        .iter()
        .find(|r| {
            r["include"]
                .as_array()
                .is_some_and(|i| i.iter().any(|p| p.as_str() == Some("config/apps/*.toml")))
        })
        .unwrap_or_else(|| panic!("no rule for config/apps/*.toml"));
    let include: Vec<&str> = rule["include"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(include.contains(&"**/apps/*.toml"), "{include:?}");
    let schema = rule["schema"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("rule without schema.path"));
    assert!(root().join(schema).is_file(), "{schema} does not exist");
    assert_eq!(
        root().join(schema).canonicalize().ok(),
        root().join("config/berth.schema.json").canonicalize().ok()
    );
}

// --- the bad-input corpus (issue 6): every broken spec, alone in a directory, makes `berth
// validate` exit 2 with a diagnostic that has a fix — never a panic, never a hang.

/// Runs berth with a deadline: a spec that makes it hang (a FIFO read, a runaway parse) fails
/// the test instead of stalling the suite.
fn berth_within(args: &[&str], deadline: std::time::Duration) -> (Output, std::time::Duration) {
    use std::process::Stdio;
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(root())
        .env_remove("BERTH_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running berth: {e}"));
    while child
        .try_wait()
        .unwrap_or_else(|e| panic!("wait: {e}"))
        .is_none()
    {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("berth {args:?} still running after {deadline:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    (out, started.elapsed())
}

/// `berth validate` on a fresh directory filled by `make`: exit 2, an error with a fix, no panic.
/// `config` is the daemon config's text, when the case needs one. Returns stderr.
fn validate_broken(case: &str, config: Option<&str>, make: impl FnOnce(&Path)) -> String {
    let tmp = tempdir();
    let specs = tmp.path().join("specs");
    std::fs::create_dir(&specs).unwrap_or_else(|e| panic!("{e}"));
    make(&specs);
    let cfg = tmp.path().join("berth.toml");
    std::fs::write(&cfg, config.unwrap_or("")).unwrap_or_else(|e| panic!("{e}"));
    let (cfg, dir) = (cfg.to_string_lossy(), specs.to_string_lossy());
    let (o, took) = berth_within(
        &["--config", &cfg, "validate", &dir],
        std::time::Duration::from_secs(20),
    );
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{case}: berth panicked\n{err}");
    assert_eq!(code(&o), 2, "{case}: exit code\n{err}");
    assert!(err.contains("error["), "{case}: no error\n{err}");
    assert!(err.contains("= help: "), "{case}: no fix\n{err}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "{case}: took {took:?}"
    );
    err
}

#[test]
fn every_invalid_fixture_alone_exits_2_without_panicking() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/invalid"))
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the corpus has {} files", files.len());
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_owned();
        let case = name.to_string_lossy().into_owned();
        // The autopilot fixtures are broken only under that cluster profile.
        let config = case
            .starts_with("autopilot")
            .then_some("profile = \"autopilot\"\n");
        let err = validate_broken(&case, config, |dir| {
            std::fs::copy(file, dir.join(&name)).unwrap_or_else(|e| panic!("{e}"));
        });
        assert!(err.contains(&case), "{case}: names the file\n{err}");
    }
}

#[test]
fn inputs_that_cannot_live_in_git_exit_2_without_panicking() {
    use std::os::unix::fs::symlink;
    let spec = "[containers.app]\nimage = \"busybox:1.36\"\n";
    // 10 MB: refused by size, quickly (validate_broken checks the time).
    let err = validate_broken("10 MB file", None, |dir| {
        let mut text = spec.to_string();
        while text.len() < 10_000_000 {
            text.push_str("# a very long comment line, repeated until the file is ten megabytes\n");
        }
        std::fs::write(dir.join("huge.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    });
    assert!(err.contains("at most 1048576 bytes"), "{err}");
    let err = validate_broken("symlink loop", None, |dir| {
        symlink("loop.toml", dir.join("loop.toml")).unwrap_or_else(|e| panic!("{e}"));
    });
    assert!(err.contains("loop.toml"), "{err}");
    let err = validate_broken("dangling symlink", None, |dir| {
        symlink("gone.toml", dir.join("web.toml")).unwrap_or_else(|e| panic!("{e}"));
    });
    assert!(err.contains("does not exist"), "{err}");
    let err = validate_broken("directory named x.toml", None, |dir| {
        std::fs::create_dir(dir.join("x.toml")).unwrap_or_else(|e| panic!("{e}"));
    });
    assert!(err.contains("is a directory"), "{err}");
    // Tests run as root, so file modes cannot make a file unreadable: a FIFO (which must never be
    // opened, the read would block). A file whose read fails (/proc/self/mem) is tested through
    // `read_spec` in src/spec/dir_tests.rs: linked from here it lies outside the spec directory
    // and is refused unread.
    let err = validate_broken("FIFO", None, |dir| {
        let ok = Command::new("mkfifo")
            .arg(dir.join("pipe.toml"))
            .status()
            .unwrap_or_else(|e| panic!("mkfifo: {e}"));
        assert!(ok.success());
    });
    assert!(err.contains("not a regular file"), "{err}");
    let err = validate_broken("a link out of the spec directory", None, |dir| {
        symlink("/proc/self/mem", dir.join("mem.toml")).unwrap_or_else(|e| panic!("{e}"));
    });
    assert!(err.contains("outside the spec directory"), "{err}");
    // Two teams add the same file name in their own subdirectories.
    let err = validate_broken("the same app in two subdirectories", None, |dir| {
        for team in ["team-a", "team-b"] {
            std::fs::create_dir(dir.join(team)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.join(team).join("web.toml"), spec).unwrap_or_else(|e| panic!("{e}"));
        }
    });
    assert_eq!(err.matches("error[duplicate-app]").count(), 2, "{err}");
}

#[test]
fn a_spec_linked_from_outside_the_directory_is_refused_and_never_printed() {
    let outside = tempdir();
    let key = outside.path().join("id_ed25519.toml");
    std::fs::write(&key, "replicas = \"SECRET-KEY-LINE-7f3a\"\n").expect("key");
    let specs = tempdir();
    std::os::unix::fs::symlink(&key, specs.path().join("db.toml")).expect("link");
    std::os::unix::fs::symlink(outside.path(), specs.path().join("team-b")).expect("dir link");
    for command in ["validate", "render"] {
        let out = berth(&[command, specs.path().to_str().expect("utf-8")]);
        assert_eq!(code(&out), 2, "{command}: {}", stderr(&out));
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(e.contains("outside the spec directory"), "{e}");
        assert!(!o.contains("SECRET") && !e.contains("SECRET"), "{o}\n{e}");
    }
}

// ---- A closed pipe is the reader's choice (`berth render DIR | head -1`) ----

/// Runs berth with stdout a pipe whose reader takes at most `read` bytes and then goes away,
/// as `head -c` does. Returns the exit code and stderr.
fn berth_with_reader_gone(args: &[&str], read: usize) -> (i32, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(root())
        .env_remove("BERTH_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running berth: {e}"));
    let mut reader = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut head = vec![0; read];
    let mut taken = 0;
    while taken < read {
        match reader.read(&mut head[taken..]) {
            Ok(0) => break,
            Ok(n) => taken += n,
            Err(e) => panic!("reading berth's stdout: {e}"),
        }
    }
    drop(reader);
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"));
    (code(&out), stderr(&out))
}

fn assert_quiet_exit_0(what: &str, (code, err): (i32, String)) {
    assert!(!err.contains("panicked"), "{what}: berth panicked\n{err}");
    assert!(!err.contains("error:"), "{what}: an error\n{err}");
    assert!(!err.contains("Broken pipe"), "{what}: an error\n{err}");
    assert_eq!(code, 0, "{what}: exit code\n{err}");
}

#[test]
fn a_reader_that_goes_away_ends_render_quietly() {
    // Far more YAML than a pipe holds, so berth is still writing when the reader goes away.
    let tmp = tempdir();
    let nginx = std::fs::read_to_string(root().join("tests/fixtures/valid/nginx.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..200 {
        std::fs::write(tmp.path().join(format!("web-{i}.toml")), &nginx)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let dir = tmp.path().to_string_lossy();
    let whole = berth(&["render", &dir]);
    assert_eq!(code(&whole), 0, "{}", stderr(&whole));
    // A pipe holds 64 KiB on Linux unless its owner asks for more.
    assert!(
        whole.stdout.len() > 256 << 10,
        "{} bytes",
        whole.stdout.len()
    );
    assert_quiet_exit_0(
        "render | head -c 100",
        berth_with_reader_gone(&["render", &dir], 100),
    );
    assert_quiet_exit_0(
        "render | true",
        berth_with_reader_gone(&["render", &dir], 0),
    );
}

#[test]
fn a_reader_that_goes_away_ends_schema_completions_and_validate_quietly() {
    // The reader is gone before berth writes: its first write finds the pipe closed.
    assert_quiet_exit_0("schema", berth_with_reader_gone(&["schema"], 0));
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert_quiet_exit_0(shell, berth_with_reader_gone(&["completions", shell], 0));
    }
    assert_quiet_exit_0(
        "validate",
        berth_with_reader_gone(&["validate", "config/apps"], 0),
    );
}

/// Issue 13: a kubeconfig that disables TLS verification is said once, even when the API
/// server cannot be reached and the command fails.
#[test]
fn a_kubeconfig_that_skips_tls_verification_is_warned_about_once() {
    let tmp = tempdir();
    // A port nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: lab\nclusters:\n- name: lab\n  \
             cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\n\
             contexts:\n- name: lab\n  context: {{ cluster: lab, user: me }}\nusers:\n- name: me\n  \
             user: {{ token: x }}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let o = berth_env(
        &["diff", "tests/fixtures/valid"],
        &[("KUBECONFIG", &kubeconfig.to_string_lossy())],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    let warning = "warning: the kubeconfig's cluster lab skips TLS verification \
                   (insecure-skip-tls-verify); berth cannot tell the API server from an impostor";
    assert_eq!(err.matches(warning).count(), 1, "{err}");
}

#[test]
fn rbac_prints_namespaced_roles_and_refuses_a_namespace_the_config_does_not_allow() {
    let o = berth(&[
        "--config",
        "config/berth.toml",
        "rbac",
        "--app-namespace",
        "db",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let yaml = stdout(&o);
    assert!(
        yaml.contains("kind: Role\n") && yaml.contains("namespace: db\n"),
        "{yaml}"
    );
    // `*` makes berth list across the cluster: that read, and nothing else, is cluster-wide.
    assert_eq!(
        yaml.matches("\nkind: ClusterRole").count(),
        2,
        "a ClusterRole and its binding:\n{yaml}"
    );
    assert!(yaml.contains("name: berth-list\n"), "{yaml}");
    // Every namespace named: nothing cluster-wide at all.
    let dir = tempfile::tempdir().expect("temp dir");
    let named = dir.path().join("berth.toml");
    std::fs::write(&named, "[safety]\nnamespaces = [\"db\", \"cache\"]\n").expect("config");
    let o = berth(&["--config", named.to_str().expect("utf-8"), "rbac"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let yaml = stdout(&o);
    assert!(
        !yaml.contains("ClusterRole") && yaml.contains("namespace: cache\n"),
        "nothing cluster-wide:\n{yaml}"
    );
    let o = berth(&["rbac", "--app-namespace", "kube-system"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("`kube-system` is not allowed by `safety.namespaces`"),
        "{}",
        stderr(&o)
    );
}
