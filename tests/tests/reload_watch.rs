//! Reload on config file change (SPEC §1), through the real binary: no SIGHUP and no
//! `POST /admin/reload` anywhere here, only writes to the config's directory.

use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate_e2e::{get, post_json, Gateway, Mock};

fn config(mock: &Mock, keys: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0, admin_listen: 127.0.0.1:0}}
providers:
  - {{name: mock, kind: openai_compatible, base_url: {}, keys: [{{key: sk-p}}]}}
virtual_keys:
{keys}",
        mock.base_url()
    )
}

const KEY_A: &str = "  - {id: a, key: key-a}\n";
const KEYS_AB: &str = "  - {id: a, key: key-a}\n  - {id: b, key: key-b}\n";

fn chat(gw: &Gateway, key: &str) -> u16 {
    post_json(
        &format!("{}/v1/chat/completions", gw.url),
        &[("authorization", &format!("Bearer {key}"))],
        &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .status
}

/// `tollgate_config_reloads_total{result}` as (ok, error).
fn reloads(gw: &Gateway) -> (u64, u64) {
    let body = get(&format!("{}/metrics", gw.admin_url), &[]).body;
    let count = |result: &str| {
        let prefix = format!("tollgate_config_reloads_total{{result=\"{result}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in metrics:\n{body}"))
    };
    (count("ok"), count("error"))
}

/// Polls until `ok` holds; the watch debounces for 200 ms, so 10 s is ample even on a loaded
/// machine.
fn wait_until(mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Time for any reload still pending to happen: well past the debounce (200 ms), so that a
/// later count is final. Used only before asserting that something did NOT happen.
fn let_reloads_settle() {
    std::thread::sleep(Duration::from_millis(1000));
}

/// Writes `text` beside `path` and renames it over `path`, as editors and config management
/// tools do: the config's inode changes.
fn replace_via_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(".tollgate.yaml.tmp");
    std::fs::write(&tmp, text).expect("write temp config");
    std::fs::rename(&tmp, path).expect("rename over config");
}

#[test]
fn editing_the_config_in_place_adds_a_key() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, KEY_A));
    assert_eq!(chat(&gw, "key-b"), 401);

    std::fs::write(gw.config_path(), config(&mock, KEYS_AB)).expect("write config");
    assert!(
        wait_until(|| chat(&gw, "key-b") == 200),
        "key-b never became valid"
    );
    assert_eq!(chat(&gw, "key-a"), 200);
    assert!(reloads(&gw).0 >= 1);
}

#[test]
fn replacing_the_config_by_rename_reloads_every_time() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, KEY_A));
    assert_eq!(chat(&gw, "key-b"), 401);

    replace_via_rename(&gw.config_path(), &config(&mock, KEYS_AB));
    assert!(
        wait_until(|| chat(&gw, "key-b") == 200),
        "key-b never became valid"
    );
    // A second replacement: a watch on the original file's inode would have lost track by now.
    replace_via_rename(
        &gw.config_path(),
        &config(&mock, "  - {id: c, key: key-c}\n"),
    );
    assert!(
        wait_until(|| chat(&gw, "key-c") == 200 && chat(&gw, "key-b") == 401),
        "the second replacement was not picked up"
    );
}

#[test]
fn a_broken_config_keeps_the_old_plan_serving() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, KEY_A));
    assert_eq!(reloads(&gw), (0, 0));

    std::fs::write(
        gw.config_path(),
        config(
            &mock,
            "  - {id: a, key: key-a, team: ghost}\n  - {id: b, key: key-b}\n",
        ),
    )
    .expect("write config");
    assert!(
        wait_until(|| reloads(&gw).1 >= 1),
        "the broken config was never tried"
    );
    assert_eq!(reloads(&gw).0, 0);
    assert_eq!(chat(&gw, "key-a"), 200, "the previous plan keeps serving");
    assert_eq!(
        chat(&gw, "key-b"),
        401,
        "nothing of the broken config applies"
    );

    // Fixing the file recovers without a restart.
    std::fs::write(gw.config_path(), config(&mock, KEYS_AB)).expect("write config");
    assert!(
        wait_until(|| chat(&gw, "key-b") == 200),
        "the fixed config was not picked up"
    );
}

#[test]
fn a_burst_of_writes_reloads_at_most_twice() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, KEY_A));

    // Five saves 20 ms apart, each adding one more key.
    let mut keys = KEY_A.to_string();
    for i in 1..=5 {
        keys.push_str(&format!("  - {{id: k{i}, key: key-{i}}}\n"));
        std::fs::write(gw.config_path(), config(&mock, &keys)).expect("write config");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        wait_until(|| chat(&gw, "key-5") == 200),
        "the last write was never loaded"
    );
    let_reloads_settle();
    let (ok, error) = reloads(&gw);
    assert!(
        (1..=2).contains(&(ok + error)),
        "five quick writes gave {ok} ok and {error} failed reloads"
    );
}

#[test]
fn other_files_in_the_directory_do_not_reload() {
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, KEY_A));

    // Such as the usage snapshot, which is usually written beside the config.
    let other = gw.dir.path().join("usage.json");
    std::fs::write(&other, "{}").expect("write other file");
    std::fs::write(gw.dir.path().join(".tollgate.yaml.swp"), "x").expect("write swap file");
    std::fs::remove_file(&other).expect("remove other file");
    let_reloads_settle();
    assert_eq!(reloads(&gw), (0, 0));
}

/// Kubernetes mounts a ConfigMap as `tollgate.yaml -> ..data/tollgate.yaml` with
/// `..data -> ..<timestamp>/`, and updates it by writing a new `..<timestamp>/` and renaming a
/// fresh `..data_tmp` link over `..data`: the config file itself never gets an event.
#[test]
fn a_configmap_style_symlink_swap_reloads() {
    use std::os::unix::fs::symlink;
    let mock = Mock::start(&[]);
    let gw = Gateway::start(&config(&mock, KEY_A));
    let dir = gw.dir.path();

    // Turn the harness's plain file into the ConfigMap layout, same content.
    std::fs::create_dir(dir.join("..v1")).expect("mkdir");
    std::fs::write(dir.join("..v1/tollgate.yaml"), config(&mock, KEY_A)).expect("write");
    symlink("..v1", dir.join("..data")).expect("link ..data");
    symlink("..data/tollgate.yaml", dir.join(".link_tmp")).expect("link config");
    std::fs::rename(dir.join(".link_tmp"), gw.config_path()).expect("rename link");
    assert!(
        wait_until(|| reloads(&gw).0 >= 1),
        "the layout change was not seen"
    );
    let before = reloads(&gw).0;
    assert_eq!(chat(&gw, "key-b"), 401);

    // The update, as kubelet's atomic writer does it.
    std::fs::create_dir(dir.join("..v2")).expect("mkdir");
    std::fs::write(dir.join("..v2/tollgate.yaml"), config(&mock, KEYS_AB)).expect("write");
    symlink("..v2", dir.join("..data_tmp")).expect("link ..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(dir.join("..v1")).expect("remove old version");
    assert!(
        wait_until(|| chat(&gw, "key-b") == 200),
        "the swapped config was not loaded"
    );
    assert!(reloads(&gw).0 > before);
}
