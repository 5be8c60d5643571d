use super::*;

const HOUR: u64 = 3600;
const NOW: u64 = 1_000_000;

fn wanted(ns: &str, name: &str, source: &str, appearing: bool) -> Wanted {
    Wanted {
        namespace: ns.into(),
        name: name.into(),
        source: source.into(),
        objects: vec![
            ("StatefulSet".into(), name.into()),
            ("Service".into(), format!("{name}-headless")),
        ],
        appearing,
    }
}

fn gone(ns: &str, name: &str, source: &str) -> Gone {
    Gone {
        namespace: ns.into(),
        name: name.into(),
        source: Some(source.into()),
        removing: false,
        objects: vec![("StatefulSet".into(), name.into())],
    }
}

fn policy() -> Policy {
    Policy {
        max_removals: 2,
        window_secs: HOUR,
        allow_removals: false,
        allow_empty: false,
    }
}

struct Case {
    wanted: Vec<Wanted>,
    gone: Vec<Gone>,
    broken_files: Vec<BrokenFile>,
    broken_dirs: Vec<String>,
    files: usize,
    ledger: Ledger,
    policy: Policy,
}

impl Case {
    fn new(wanted: Vec<Wanted>, gone: Vec<Gone>) -> Case {
        Case {
            files: wanted.len().max(1),
            wanted,
            gone,
            broken_files: Vec::new(),
            broken_dirs: Vec::new(),
            ledger: Ledger::default(),
            policy: policy(),
        }
    }

    fn decide(&self) -> Decision {
        decide(&Inputs {
            wanted: &self.wanted,
            gone: &self.gone,
            broken_files: &self.broken_files,
            broken_dirs: &self.broken_dirs,
            spec_files: self.files,
            ledger: &self.ledger,
            now: NOW,
            policy: &self.policy,
        })
    }
}

fn key(ns: &str, name: &str) -> AppKey {
    AppKey::new(ns, name)
}

fn verdict<'a>(d: &'a Decision, ns: &str, name: &str) -> &'a Verdict {
    d.verdicts.get(&key(ns, name)).expect("a verdict")
}

fn held_reason(d: &Decision, ns: &str, name: &str) -> String {
    match verdict(d, ns, name) {
        Verdict::Held { reason } => reason.clone(),
        other => panic!("{ns}/{name} should be held, is {other:?}"),
    }
}

fn assert_remove(d: &Decision, ns: &str, name: &str) {
    assert!(
        matches!(verdict(d, ns, name), Verdict::Remove { .. }),
        "{ns}/{name}: {:?}",
        verdict(d, ns, name)
    );
}

#[test]
fn an_app_whose_spec_is_gone_is_removed_and_its_start_recorded() {
    let d = Case::new(
        vec![wanted("db", "other", "other.toml", false)],
        vec![gone("db", "old", "old.toml")],
    )
    .decide();
    assert_remove(&d, "db", "old");
    assert_eq!(d.ledger.start, vec!["db/old".to_string()]);
    assert!(d.ledger.hold.is_empty());
}

#[test]
fn a_namespace_change_is_a_move_and_is_held_and_recorded() {
    let d = Case::new(
        vec![wanted("dbb", "mysql", "mysql.toml", true)],
        vec![gone("db", "mysql", "mysql.toml")],
    )
    .decide();
    let reason = held_reason(&d, "db", "mysql");
    assert!(
        reason.starts_with("looks moved to dbb/mysql (from mysql.toml)"),
        "{reason}"
    );
    assert!(reason.contains("--allow-removals"), "{reason}");
    assert!(d.ledger.hold.contains_key("db/mysql"));
    assert!(d.ledger.start.is_empty());
}

#[test]
fn a_name_change_in_the_same_file_is_a_move() {
    let d = Case::new(
        vec![wanted("db", "mysql2", "mysql.toml", true)],
        vec![gone("db", "mysql", "mysql.toml")],
    )
    .decide();
    assert!(
        held_reason(&d, "db", "mysql").starts_with("looks moved to db/mysql2 (from mysql.toml)")
    );
}

#[test]
fn a_renamed_file_without_name_is_a_move_but_a_removal_elsewhere_is_not() {
    let d = Case::new(
        vec![wanted(
            "db",
            "mysql-primary",
            "team/mysql-primary.toml",
            true,
        )],
        vec![
            gone("db", "mysql", "team/mysql.toml"),
            gone("db", "redis", "other/redis.toml"),
        ],
    )
    .decide();
    assert!(held_reason(&d, "db", "mysql").starts_with("looks moved to db/mysql-primary"));
    assert_remove(&d, "db", "redis");
}

#[test]
fn an_app_that_is_already_live_is_not_a_move_target() {
    // The same name lives on in another namespace as its own, older app: a plain removal.
    let d = Case::new(
        vec![wanted("prod", "mysql", "prod/mysql.toml", false)],
        vec![gone("db", "mysql", "db/mysql.toml")],
    )
    .decide();
    assert_remove(&d, "db", "mysql");
}

#[test]
fn allow_removals_releases_a_move_and_says_which() {
    let mut case = Case::new(
        vec![wanted("dbb", "mysql", "mysql.toml", true)],
        vec![gone("db", "mysql", "mysql.toml")],
    );
    case.policy.allow_removals = true;
    let d = case.decide();
    match verdict(&d, "db", "mysql") {
        Verdict::Remove { released: Some(r) } => assert!(r.contains("dbb/mysql"), "{r}"),
        other => panic!("{other:?}"),
    }
    assert!(d.ledger.release.contains("db/mysql"));
    assert_eq!(d.ledger.start, vec!["db/mysql".to_string()]);
}

#[test]
fn a_broken_file_protects_by_identity_and_by_source() {
    let mut case = Case::new(
        vec![],
        vec![gone("db", "mysql", "mysql.toml"), gone("db", "x", "x.toml")],
    );
    case.files = 2;
    case.broken_files = vec![
        BrokenFile {
            source: "mysql.toml".into(),
            name: "renamed".into(),
            namespace: None,
            shown: "d/mysql.toml".into(),
        },
        BrokenFile {
            source: "y.toml".into(),
            name: "x".into(),
            namespace: None,
            shown: "d/y.toml".into(),
        },
    ];
    let d = case.decide();
    for name in ["mysql", "x"] {
        assert!(
            matches!(verdict(&d, "db", name), Verdict::Protected { .. }),
            "{name}"
        );
    }
    assert!(d.ledger.is_empty());
}

#[test]
fn an_unreadable_directory_protects_the_apps_under_it_only() {
    let mut case = Case::new(
        vec![wanted("db", "keep", "keep.toml", false)],
        vec![
            gone("db", "a", "team-a/a.toml"),
            gone("db", "deep", "team-a/x/deep.toml"),
            gone("db", "b", "team-ab/b.toml"),
        ],
    );
    case.broken_dirs = vec!["team-a".into()];
    let d = case.decide();
    match verdict(&d, "db", "a") {
        Verdict::Protected { reason } => assert!(reason.contains("team-a/"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        verdict(&d, "db", "deep"),
        Verdict::Protected { .. }
    ));
    assert_remove(&d, "db", "b");
}

#[test]
fn an_unreadable_directory_holds_apps_whose_source_is_unknown() {
    let mut case = Case::new(
        vec![wanted("db", "keep", "keep.toml", false)],
        vec![Gone {
            source: None,
            ..gone("db", "old", "")
        }],
    );
    case.broken_dirs = vec!["team-a".into()];
    let d = case.decide();
    assert!(held_reason(&d, "db", "old").contains("team-a/"));
    assert!(d.ledger.hold.is_empty(), "a hold for this pass only");
}

#[test]
fn an_object_of_a_desired_app_is_never_removed_as_another_app() {
    // `kubectl label sts web app.kubernetes.io/name=web2` on objects without berth's record.
    let d = Case::new(
        vec![wanted("db", "web", "web.toml", false)],
        vec![Gone {
            objects: vec![("StatefulSet".into(), "web".into())],
            ..gone("db", "web2", "web.toml")
        }],
    )
    .decide();
    match verdict(&d, "db", "web2") {
        Verdict::Protected { reason } => assert!(reason.contains("db/web"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_budget_counts_across_passes() {
    // Pass one: two removals, within the budget.
    let case = Case::new(
        vec![wanted("db", "keep", "keep.toml", false)],
        vec![gone("db", "a", "a.toml"), gone("db", "b", "b.toml")],
    );
    let first = case.decide();
    assert_remove(&first, "db", "a");
    assert_remove(&first, "db", "b");
    let ledger = case.ledger.apply(&first.ledger, NOW, HOUR);
    assert_eq!(ledger.started.len(), 2);

    // Pass two, seconds later: two more exceed it and are held, and recorded.
    let mut second = Case::new(
        vec![wanted("db", "keep", "keep.toml", false)],
        vec![gone("db", "c", "c.toml"), gone("db", "d", "d.toml")],
    );
    second.ledger = ledger.clone();
    let d = second.decide();
    assert!(held_reason(&d, "db", "c").contains("removal budget"));
    assert!(held_reason(&d, "db", "d").contains("safety.max_removals = 2"));
    assert_eq!(d.ledger.hold.len(), 2);
    assert!(d.ledger.start.is_empty());
    assert_eq!(d.refusals.len(), 1);

    // An hour later the budget is free again, but recorded holds stay held.
    let held = ledger.apply(&d.ledger, NOW, HOUR);
    let mut later = Case::new(
        vec![wanted("db", "keep", "keep.toml", false)],
        vec![gone("db", "c", "c.toml"), gone("db", "d", "d.toml")],
    );
    later.ledger = held.apply(&LedgerChange::default(), NOW + HOUR, HOUR);
    assert!(later.ledger.started.is_empty(), "old starts are pruned");
    let d = decide(&Inputs {
        now: NOW + HOUR,
        ..inputs(&later)
    });
    assert!(matches!(verdict(&d, "db", "c"), Verdict::Held { .. }));
}

fn inputs(case: &Case) -> Inputs<'_> {
    Inputs {
        wanted: &case.wanted,
        gone: &case.gone,
        broken_files: &case.broken_files,
        broken_dirs: &case.broken_dirs,
        spec_files: case.files,
        ledger: &case.ledger,
        now: NOW,
        policy: &case.policy,
    }
}

#[test]
fn a_removal_already_budgeted_goes_on_when_planned_again() {
    // The daemon plans one app at a time: the second app's plan sees both starts recorded.
    let mut case = Case::new(
        vec![],
        vec![gone("db", "a", "a.toml"), gone("db", "b", "b.toml")],
    );
    case.files = 1;
    case.ledger = Ledger::default().apply(
        &LedgerChange {
            start: vec!["db/a".into(), "db/b".into()],
            ..LedgerChange::default()
        },
        NOW - 5,
        HOUR,
    );
    let d = case.decide();
    assert_remove(&d, "db", "a");
    assert_remove(&d, "db", "b");
}

#[test]
fn a_hold_of_three_does_not_release_itself_when_one_spec_comes_back() {
    let case = Case::new(
        vec![wanted("db", "keep", "keep.toml", false)],
        vec![
            gone("db", "a", "a.toml"),
            gone("db", "b", "b.toml"),
            gone("db", "c", "c.toml"),
        ],
    );
    let d = case.decide();
    for n in ["a", "b", "c"] {
        assert!(matches!(verdict(&d, "db", n), Verdict::Held { .. }), "{n}");
    }
    let ledger = case.ledger.apply(&d.ledger, NOW, HOUR);

    // c's spec comes back: its hold ends, a and b stay held although 2 ≤ max_removals.
    let mut back = Case::new(
        vec![
            wanted("db", "keep", "keep.toml", false),
            wanted("db", "c", "c.toml", false),
        ],
        vec![gone("db", "a", "a.toml"), gone("db", "b", "b.toml")],
    );
    back.ledger = ledger;
    let d = back.decide();
    assert!(matches!(verdict(&d, "db", "a"), Verdict::Held { .. }));
    assert!(matches!(verdict(&d, "db", "b"), Verdict::Held { .. }));
    assert!(d.ledger.release.contains("db/c"));
    assert!(d.ledger.start.is_empty());
}

#[test]
fn an_empty_directory_holds_every_removal_for_the_pass() {
    let mut case = Case::new(vec![], vec![gone("db", "a", "a.toml")]);
    case.files = 0;
    let d = case.decide();
    assert!(held_reason(&d, "db", "a").contains("--allow-empty"));
    assert!(d.ledger.is_empty());
    case.policy.allow_empty = true;
    assert_remove(&case.decide(), "db", "a");
}

#[test]
fn a_removal_under_way_finishes_whatever_the_budget() {
    let mut case = Case::new(
        vec![],
        vec![Gone {
            removing: true,
            ..gone("db", "a", "a.toml")
        }],
    );
    case.policy.max_removals = 0;
    let d = case.decide();
    assert_remove(&d, "db", "a");
}

#[test]
fn the_ledger_round_trips_as_json() {
    let ledger = Ledger::default().apply(
        &LedgerChange {
            start: vec!["db/a".into()],
            hold: BTreeMap::from([(
                "db/b".into(),
                Hold {
                    reason: "r".into(),
                    since: 7,
                },
            )]),
            ..LedgerChange::default()
        },
        NOW,
        HOUR,
    );
    let text = serde_json::to_string(&ledger).expect("json");
    assert_eq!(
        serde_json::from_str::<Ledger>(&text).expect("parse"),
        ledger
    );
}
