//! Looking inside a point in the dashboard: its contents as a tree (enter
//! into a folder, esc back up to where it was), the filter as you type, `R`
//! on a folder or key opening the wizard with just that part, and `d`
//! comparing the point with the live target or another point. The items
//! are a real listing of the lab's etcd snapshot point (`drtool ls -o
//! json`: Kubernetes' own keys, binary keys, leased keys), indexed as the
//! worker indexes a point; answers are fed back as the worker sends them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "tui/fixture.rs"]
mod fixture;

use std::sync::Arc;

use drtool::engine::browse::{Entry, PointIndex};
use drtool::engine::diff::{Change, ChangeKind, Side, text_diff};
use drtool::engine::kind::Item;
use drtool::tui::app::{Action, App, Effect, Input, View, WizardStep};
use drtool::tui::keymap::Command;
use drtool::tui::model::{Failure, Loadable};
use drtool::tui::screens::contents::{Index, LEVEL_ROWS};
use drtool::tui::screens::diff::{Shown, With};
use drtool::tui::view::{BAD, GOOD};

const SIZES: [(u16, u16); 3] = [(60, 15), (80, 24), (160, 48)];
const POINT: &str = "20261201T212817Z-20f2e41e";

fn snap(name: &str, app: &App) {
    for (w, h) in SIZES {
        let t = fixture::draw(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t.backend());
    }
}

fn cmd(app: &mut App, c: Command) -> Vec<Effect> {
    let e = app.update(Action::Cmd(c));
    serve(app, e)
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        let e = app.update(Action::Input(Input::Char(c)));
        serve(app, e);
    }
}

fn items() -> Vec<Item> {
    std::fs::read_to_string(format!("{}/etcd-items.jsonl", fixture::DIR))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn index() -> Index {
    let kinds = drtool::source::registry();
    let kind = kinds.get("etcd").unwrap().clone();
    let points = fixture::points();
    let m = points
        .iter()
        .flat_map(|(_, p)| p)
        .find(|p| p.manifest.point_id == POINT)
        .unwrap()
        .manifest
        .clone();
    let columns = kind.contents().unwrap().columns(&m);
    let about = vec![
        "consistent: etcd revision 10945".to_string(),
        "8 leases".to_string(),
    ];
    Index(Arc::new(
        PointIndex::from_items(kind, (POINT, columns), about, items()).unwrap(),
    ))
}

/// Does what the worker does for the reads the views ask for (levels are
/// read from the index at once); other effects are handed back.
fn serve(app: &mut App, effects: Vec<Effect>) -> Vec<Effect> {
    let mut rest = Vec::new();
    for e in effects {
        match e {
            Effect::ReadLevel(ask) => {
                let level = ask.index.0.level(&ask.prefix, &ask.filter, LEVEL_ROWS);
                let more = app.update(Action::Level(ask.seq, level.map_err(Failure::from)));
                rest.extend(serve(app, more));
            }
            other => rest.push(other),
        }
    }
    rest
}

/// The lab-etcd point opened, its contents asked for and listed.
fn browsing() -> App {
    let mut app = fixture::app();
    cmd(&mut app, Command::NextScreen);
    let at = app.points().iter().position(|p| p.id() == POINT).unwrap();
    for _ in 0..at {
        cmd(&mut app, Command::Down);
    }
    cmd(&mut app, Command::Open);
    let effects = cmd(&mut app, Command::Open);
    let [Effect::IndexPoint { seq, point, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(point, POINT);
    let seq = *seq;
    let e = app.update(Action::Indexed(seq, Ok(index())));
    serve(&mut app, e);
    app
}

fn contents(app: &App) -> &drtool::tui::screens::contents::ContentsView {
    match app.views.last() {
        Some(View::Contents(c)) => c,
        other => panic!("not the contents: {other:?}"),
    }
}

fn select(app: &mut App, path: &str) {
    let at = contents(app)
        .level
        .ready()
        .unwrap()
        .entries
        .iter()
        .position(|e| e.path() == path)
        .unwrap_or_else(|| panic!("no {path}"));
    cmd(app, Command::Top);
    for _ in 0..at {
        cmd(app, Command::Down);
    }
}

#[test]
fn a_point_is_listed_before_its_contents_show() {
    let mut app = fixture::app();
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Open);
    let effects = cmd(&mut app, Command::Open);
    let [Effect::IndexPoint { seq, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    let seq = *seq;
    snap("contents_listing", &app);
    app.update(Action::Indexed(
        seq,
        Err(Failure::failed(
            "cannot reach the store of region us-east-1 at http://127.0.0.1:13900 (connection refused)",
        )),
    ));
    snap("contents_unreachable", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(fixture::colour_of(&t, "cannot reach the store"), Some(BAD));
    // esc goes back to the point.
    cmd(&mut app, Command::Back);
    assert!(matches!(app.views.last(), Some(View::Point { .. })));
}

#[test]
fn folders_are_entered_and_left_where_they_were() {
    let mut app = browsing();
    snap("contents_root", &app);
    let root = contents(&app).level.ready().unwrap().clone();
    assert_eq!(root.items, 1024);
    let folders: Vec<&str> = root
        .entries
        .iter()
        .filter(|e| matches!(e, Entry::Folder { .. }))
        .map(|e| e.path())
        .collect();
    assert!(folders.contains(&"/registry/"), "{folders:?}");
    // The folders' counts add up to what the level holds.
    let counted: u64 = root
        .entries
        .iter()
        .map(|e| match e {
            Entry::Folder { items, .. } => *items,
            Entry::Item { .. } => 1,
        })
        .sum();
    assert_eq!(counted, root.items);
    select(&mut app, "/registry/");
    cmd(&mut app, Command::Open);
    select(&mut app, "/registry/configmaps/");
    cmd(&mut app, Command::Open);
    assert_eq!(contents(&app).prefix, "/registry/configmaps/");
    snap("contents_configmaps", &app);
    // Up a level: the folder left is selected again.
    cmd(&mut app, Command::Back);
    let c = contents(&app);
    assert_eq!(c.prefix, "/registry/");
    assert_eq!(c.selected().unwrap().path(), "/registry/configmaps/");
    cmd(&mut app, Command::Back);
    assert_eq!(contents(&app).prefix, "");
    cmd(&mut app, Command::Back);
    assert!(matches!(app.views.last(), Some(View::Point { .. })));
}

#[test]
fn the_filter_narrows_as_you_type_and_esc_clears_it() {
    let mut app = browsing();
    cmd(&mut app, Command::Filter);
    assert!(app.wants_text());
    typed(&mut app, "kube-root-ca");
    let level = contents(&app).level.ready().unwrap().clone();
    assert!(level.items > 0);
    assert!(
        level
            .entries
            .iter()
            .all(|e| e.path().to_lowercase().contains("kube-root-ca")),
        "{level:?}"
    );
    snap("contents_filtered", &app);
    app.update(Action::Input(Input::Enter));
    assert!(!app.wants_text());
    assert_eq!(contents(&app).filter, "kube-root-ca");
    // enter on a filtered item goes to its folder, the item selected.
    let mut into = app.clone();
    cmd(&mut into, Command::Open);
    let c = contents(&into);
    assert_eq!(c.prefix, "/registry/configmaps/default/");
    assert_eq!(c.filter, "");
    assert_eq!(
        c.selected().unwrap().path(),
        "/registry/configmaps/default/kube-root-ca.crt"
    );
    // esc clears the filter first, and stays.
    cmd(&mut app, Command::Back);
    assert_eq!(contents(&app).filter, "");
    assert_eq!(contents(&app).level.ready().unwrap().items, 1024);
    // Nothing matching says so.
    cmd(&mut app, Command::Filter);
    typed(&mut app, "no-such-key-anywhere");
    let t = fixture::draw(&app, 80, 24);
    let text = format!("{:?}", t.backend());
    assert!(text.contains("nothing under this level matches"), "{text}");
}

#[test]
fn a_late_level_is_dropped() {
    let mut app = browsing();
    cmd(&mut app, Command::Filter);
    let first = app.update(Action::Input(Input::Char('a')));
    let second = app.update(Action::Input(Input::Char('b')));
    let (Effect::ReadLevel(a), Effect::ReadLevel(b)) = (&first[0], &second[0]) else {
        panic!("{first:?} {second:?}")
    };
    // The answer for "ab" comes first, then the one for "a".
    let lb = b.index.0.level(&b.prefix, &b.filter, LEVEL_ROWS).unwrap();
    let la = a.index.0.level(&a.prefix, &a.filter, LEVEL_ROWS).unwrap();
    app.update(Action::Level(b.seq, Ok(lb.clone())));
    app.update(Action::Level(a.seq, Ok(la)));
    assert_eq!(contents(&app).level.ready().unwrap(), &lb);
}

#[test]
fn r_restores_the_selected_folder_or_key_through_the_wizard() {
    let mut app = browsing();
    select(&mut app, "/registry/");
    cmd(&mut app, Command::Open);
    select(&mut app, "/registry/configmaps/");
    cmd(&mut app, Command::Restore);
    let Some(View::Wizard(w)) = app.views.last() else {
        panic!("the wizard is open")
    };
    assert_eq!(w.step, WizardStep::Options);
    assert_eq!(w.point.as_deref(), Some(POINT));
    assert_eq!(w.on.values("prefix"), ["/registry/configmaps/"]);
    snap("contents_restore_prefix", &app);
    // make the plan: the request names the prefix.
    cmd(&mut app, Command::Bottom);
    let effects = cmd(&mut app, Command::Open);
    let [Effect::PlanRestore(_, ask)] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(ask.flags.values("prefix"), ["/registry/configmaps/"]);
    assert_eq!(ask.target, "lab-etcd");
    // Back to the options; enter on the part drops it (the whole point).
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Top);
    cmd(&mut app, Command::Down);
    cmd(&mut app, Command::Open);
    let Some(View::Wizard(w)) = app.views.last() else {
        panic!("the wizard is open")
    };
    assert!(w.on.values("prefix").is_empty(), "{:?}", w.on);
    // A key: --key.
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    assert!(matches!(app.views.last(), Some(View::Contents(_))));
    cmd(&mut app, Command::Filter);
    typed(&mut app, "kube-root-ca");
    app.update(Action::Input(Input::Enter));
    let key = contents(&app)
        .level
        .ready()
        .unwrap()
        .entries
        .iter()
        .find(|e| matches!(e, Entry::Item { .. }))
        .unwrap()
        .path()
        .to_string();
    select(&mut app, &key);
    cmd(&mut app, Command::Restore);
    let Some(View::Wizard(w)) = app.views.last() else {
        panic!("the wizard is open")
    };
    assert_eq!(w.on.values("key"), [key.as_str()]);
}

#[test]
fn a_binary_key_restores_only_with_the_whole_point() {
    let mut app = browsing();
    cmd(&mut app, Command::Filter);
    typed(&mut app, "\\x");
    app.update(Action::Input(Input::Enter));
    let level = contents(&app).level.ready().unwrap().clone();
    assert!(!level.entries.is_empty());
    assert!(level.entries.iter().all(|e| e.restore().is_none()));
    snap("contents_binary_keys", &app);
    cmd(&mut app, Command::Restore);
    let Some(View::Wizard(w)) = app.views.last() else {
        panic!("the wizard is open")
    };
    assert!(w.on.0.is_empty(), "{:?}", w.on);
    assert!(
        app.status
            .as_ref()
            .is_some_and(|(s, _)| s.contains("whole point")),
        "{:?}",
        app.status
    );
}

#[test]
fn read_only_offers_no_restore_from_the_contents() {
    let mut app = fixture::app_with(fixture::points(), true);
    cmd(&mut app, Command::NextScreen);
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Open);
    cmd(&mut app, Command::Restore);
    assert!(matches!(app.views.last(), Some(View::Contents(_))));
}

fn change(kind: ChangeKind, name: &str, from: Option<&str>, to: Option<&str>) -> Change {
    let side = |v: &str| Side {
        size: v.len() as u64,
        sha256: format!("{:x}", v.len() * 7919),
        details: Default::default(),
    };
    Change {
        change: kind,
        kind: "key".into(),
        name: name.into(),
        from: from.map(side),
        to: to.map(side),
        text_diff: match (from, to) {
            (Some(a), Some(b)) => text_diff(a.as_bytes(), b.as_bytes(), ("point", "live")),
            _ => None,
        },
    }
}

#[test]
fn d_compares_the_point_with_the_live_target_or_another_point() {
    let mut app = browsing();
    select(&mut app, "/registry/");
    cmd(&mut app, Command::Open);
    // d: the choice, under the level's prefix.
    cmd(&mut app, Command::DryRun);
    let Some(View::Diff(d)) = app.views.last() else {
        panic!("the diff is open")
    };
    assert_eq!(d.prefix.as_deref(), Some("/registry/"));
    assert_eq!(d.choices[0].with, With::Live);
    assert!(
        d.choices[1..]
            .iter()
            .all(|c| matches!(&c.with, With::Point(p) if p != POINT)),
        "{:?}",
        d.choices
    );
    assert!(d.choices.len() > 1, "{:?}", d.choices);
    snap("diff_choose", &app);
    let effects = cmd(&mut app, Command::Open);
    let [Effect::Diff(ask)] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(ask.with, With::Live);
    assert_eq!(ask.point, POINT);
    assert_eq!(ask.prefix.as_deref(), Some("/registry/"));
    let seq = ask.seq;
    snap("diff_comparing", &app);
    let changes = [
        change(
            ChangeKind::Changed,
            "/registry/configmaps/kube-system/coredns",
            Some(
                "apiVersion: v1\ndata:\n  Corefile: |\n    .:53 {\n        errors\n        cache 30\n    }\nkind: ConfigMap\n",
            ),
            Some(
                "apiVersion: v1\ndata:\n  Corefile: |\n    .:53 {\n        errors\n        cache 300\n        log\n    }\nkind: ConfigMap\n",
            ),
        ),
        change(
            ChangeKind::Added,
            "/registry/configmaps/shop/settings",
            None,
            Some("{\"a\":1}"),
        ),
        change(
            ChangeKind::Removed,
            "/registry/secrets/shop/token",
            Some("opaque bytes"),
            None,
        ),
    ];
    let shown = Shown {
        summary: "1 added, 1 removed, 1 changed, 380 the same: point 20261201T212817Z-20f2e41e in us-east-1 -> live in us-east-1".into(),
        differs: true,
        about: vec!["consistent: etcd revision 10945".into()],
        lines: changes.iter().flat_map(Change::lines).collect(),
        left_out: 0,
    };
    app.update(Action::Diffed(seq, Ok(shown.clone())));
    snap("diff_shown", &app);
    let t = fixture::draw(&app, 160, 48);
    assert_eq!(
        fixture::colour_of(&t, "+ /registry/configmaps/shop/settings"),
        Some(GOOD)
    );
    assert_eq!(
        fixture::colour_of(&t, "- /registry/secrets/shop/token"),
        Some(BAD)
    );
    // A late answer to an older request is dropped; esc goes back to the
    // choice, then to the contents.
    app.update(Action::Diffed(seq - 1, Err(Failure::failed("old"))));
    let Some(View::Diff(d)) = app.views.last() else {
        panic!("the diff is open")
    };
    assert!(matches!(&d.asked, Some((_, Loadable::Ready(s))) if *s == shown));
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    assert!(matches!(app.views.last(), Some(View::Contents(_))));
    // From the point itself, d compares the whole point.
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::Back);
    cmd(&mut app, Command::DryRun);
    let Some(View::Diff(d)) = app.views.last() else {
        panic!("the diff is open")
    };
    assert_eq!(d.prefix, None);
}

#[test]
fn leased_keys_show_their_lease_and_ttl_as_drtool_ls_does() {
    let mut app = browsing();
    cmd(&mut app, Command::Filter);
    typed(&mut app, "/registry/events/default/svc-00012");
    app.update(Action::Input(Input::Enter));
    let t = fixture::draw(&app, 160, 48);
    let screen = format!("{:?}", t.backend());
    let row = screen
        .lines()
        .find(|l| l.contains("svc-00012.18ef"))
        .unwrap_or_else(|| panic!("{screen}"));
    // The same cells as `drtool ls` (Item::text): hex lease, TTL in seconds.
    assert!(row.contains("682fa25182a02a75"), "{row}");
    assert!(row.contains("3660s"), "{row}");
}
