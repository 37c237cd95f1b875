//! Orphaned checkpoints (issue 17, finding 7): a kill between writing a checkpoint and
//! pruning old ones left `ckpt-*` files that no index listed and no later prune removed
//! (`--keep-last 2` had left 8). Opening the checkpoint directory — every run start and
//! resume — now removes them, and the temporaries of interrupted atomic writes; what the
//! index lists and what `last` names stay. `tests/fault_kill.rs` checks the count after real
//! kills.

use candle_core::Device;
use kiln::checkpoint::{
    Checkpoint, CheckpointManager, INDEX_FILE, Policy, last_checkpoint, remove_orphans,
};
use kiln::io::LoadOptions;
use kiln::nn::Module;
use std::path::Path;

fn a_checkpoint(step: usize) -> Checkpoint {
    let m = kiln::models::LeNet::new(kiln::models::LeNetConfig::default()).unwrap();
    let mut ck = Checkpoint::new(m.state_dict(), kiln::io::Value::dict::<&str>([]));
    ck.progress.global_step = step;
    ck
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn opening_a_checkpoint_directory_removes_orphans_and_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let policy = Policy {
        keep_last: 2,
        keep_best: 0,
        ..Default::default()
    };
    let mut m = CheckpointManager::new(&dir, policy.clone()).unwrap();
    for step in 1..=4 {
        m.save(&a_checkpoint(step), None).unwrap();
    }
    m.finish().unwrap();
    drop(m);
    // What kills leave: a checkpoint pruned from the index but not yet deleted, one written
    // but not yet indexed, a checkpoint directory of the dir form, and a half-written
    // temporary file.
    let kept = names(&dir);
    std::fs::copy(
        dir.join("ckpt-e0000-s00000004.pt"),
        dir.join("ckpt-e0000-s00000001.pt"),
    )
    .unwrap();
    std::fs::copy(
        dir.join("ckpt-e0000-s00000004.pt"),
        dir.join("ckpt-e0000-s00000005.pt"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("ckpt-e0000-s00000002")).unwrap();
    std::fs::write(dir.join("ckpt-e0000-s00000002/model.safetensors"), b"x").unwrap();
    std::fs::write(
        dir.join(".ckpt-e0000-s00000006.pt.kiln-tmp-1-0"),
        b"partial",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), b"not kiln's").unwrap();

    let m = CheckpointManager::new(&dir, policy).unwrap();
    let mut want = kept.clone();
    want.push("notes.txt".into());
    want.sort();
    assert_eq!(
        names(&dir),
        want,
        "orphans and temporaries are gone, the rest stays"
    );
    assert_eq!(m.records().len(), 2);
    let last = last_checkpoint(&dir).unwrap().unwrap();
    assert!(last.ends_with("ckpt-e0000-s00000004.pt"));
    Checkpoint::load(&last, &LoadOptions::new(), &Device::Cpu).unwrap();
}

#[test]
fn last_is_kept_even_when_the_index_does_not_list_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut m = CheckpointManager::new(dir, Policy::default()).unwrap();
    m.save(&a_checkpoint(1), None).unwrap();
    drop(m);
    std::fs::write(dir.join(INDEX_FILE), br#"{"checkpoints": []}"#).unwrap();
    assert_eq!(remove_orphans(dir).unwrap(), Vec::<String>::new());
    assert!(last_checkpoint(dir).unwrap().is_some());
}

#[test]
fn without_a_readable_index_nothing_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("ckpt-e0000-s00000001.pt"), b"someone's").unwrap();
    assert!(remove_orphans(dir).unwrap().is_empty());
    std::fs::write(dir.join(INDEX_FILE), b"{not json").unwrap();
    assert!(remove_orphans(dir).unwrap().is_empty());
    assert!(dir.join("ckpt-e0000-s00000001.pt").exists());
}

#[test]
fn the_checkpoint_resumed_from_is_never_an_orphan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let mut m = CheckpointManager::new(&dir, Policy::default()).unwrap();
    m.save(&a_checkpoint(1), None).unwrap();
    m.finish().unwrap();
    drop(m);
    let by_hand = dir.join("ckpt-by-hand.pt");
    std::fs::copy(dir.join("ckpt-e0000-s00000001.pt"), &by_hand).unwrap();
    std::fs::copy(&by_hand, dir.join("ckpt-stray.pt")).unwrap();
    // Named through another spelling of the same path: compared canonically.
    let spelled = dir.join("..").join("checkpoints").join("ckpt-by-hand.pt");
    let m = CheckpointManager::keeping(&dir, Policy::default(), &[spelled.as_path()]).unwrap();
    drop(m);
    assert!(by_hand.exists(), "the kept file was removed");
    assert!(!dir.join("ckpt-stray.pt").exists(), "a real orphan stayed");
    let ck = Checkpoint::load(&by_hand, &LoadOptions::new(), &Device::Cpu).unwrap();
    assert_eq!(ck.progress.global_step, 1);
}
