//! The root case: the service user, reachability of the home, ownership, the uid drop.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kojibox_proc::{
    Error, Spawner, User, check_traversable, chown_tree, current_is_root, lookup_user,
};

use crate::helpers::{chmod, sh};

#[test]
fn users_are_found_in_etc_passwd() {
    let root = lookup_user("root").unwrap();
    assert_eq!((root.uid, root.gid), (0, 0));
    let nobody = lookup_user("nobody").unwrap();
    assert_eq!(nobody.uid, 65534);
    let err = lookup_user("kojibox-no-such-user").unwrap_err();
    assert!(matches!(err, Error::UnknownUser { .. }), "{err:?}");
    assert!(err.to_string().contains("kojibox-no-such-user"), "{err}");
}

#[test]
fn a_closed_folder_is_named_when_the_user_cannot_pass() {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let locked = dir.path().join("locked");
    std::fs::create_dir_all(locked.join("home/app")).unwrap();
    chmod(&locked, 0o700);
    // As root the folder is root's and the user is `nobody`; otherwise the folder is the test
    // user's, so check for some other user (`nobody` would be the owner when tests run as it).
    let owner = std::fs::metadata(&locked).unwrap().uid();
    let nobody = if current_is_root() {
        lookup_user("nobody").unwrap()
    } else {
        User {
            name: "someone-else".into(),
            uid: owner + 1,
            gid: owner + 1,
            home: "/".into(),
        }
    };

    let err = check_traversable(&locked.join("home/app/data"), &nobody).unwrap_err();
    let Error::NotTraversable { blocking, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(blocking, &locked);
    let message = err.to_string();
    assert!(
        message.contains(&format!("chmod o+x {}", locked.display())),
        "{message}"
    );
    assert!(err.is_permission());

    check_traversable(Path::new("/tmp"), &nobody).unwrap();
    check_traversable(&locked, &lookup_user("root").unwrap()).unwrap();
    chmod(&locked, 0o711);
    check_traversable(&locked.join("home/app/data"), &nobody).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_as_the_service_user() {
    if !current_is_root() {
        eprintln!("skipping services_run_as_the_service_user: needs root to switch users");
        return;
    }
    let nobody = lookup_user("nobody").unwrap();
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let spawner = Spawner::new().unwrap();

    let mut spec = sh("id -u; id -g; id -G; touch owned-by-me", dir.path());
    spec.user = Some(nobody.clone());
    let refused = spawner
        .spawn(spec.clone())
        .await
        .unwrap()
        .child
        .wait_with_output()
        .await
        .unwrap();
    assert!(
        !refused.status.success(),
        "nobody cannot write in a root-owned 0755 folder"
    );

    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("base")).unwrap();
    std::fs::write(data.join("base/file"), "x").unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "not yours").unwrap();
    std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
    chown_tree(&data, &nobody).unwrap();
    for path in [data.clone(), data.join("base"), data.join("base/file")] {
        assert_eq!(
            std::fs::metadata(&path).unwrap().uid(),
            65534,
            "{}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::symlink_metadata(data.join("link")).unwrap().uid(),
        65534
    );
    assert_eq!(
        std::fs::metadata(&outside).unwrap().uid(),
        0,
        "symlinks are not followed"
    );

    spec.cwd = data.clone();
    let output = spawner
        .spawn(spec.clone())
        .await
        .unwrap()
        .child
        .wait_with_output()
        .await
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gid = nobody.gid.to_string();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["65534", gid.as_str(), gid.as_str()],
        "no extra groups"
    );
    assert_eq!(
        std::fs::metadata(data.join("owned-by-me")).unwrap().uid(),
        65534
    );

    chmod(dir.path(), 0o700);
    let err = spawner.spawn(spec).await.unwrap_err();
    let Error::NotTraversable { blocking, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(blocking, dir.path(), "{err}");
}
