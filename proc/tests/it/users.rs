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

/// A user database in a temp folder: a few system users, one ordinary user inside the range's
/// start (as a site might have), and its group file.
fn database(dir: &Path) -> kojibox_proc::UserDatabase {
    let first = *kojibox_proc::SERVICE_IDS.start();
    let db = kojibox_proc::UserDatabase {
        passwd: dir.join("passwd"),
        group: dir.join("group"),
        lock: dir.join(".pwd.lock"),
    };
    std::fs::write(
        &db.passwd,
        format!(
            "root:x:0:0:root:/root:/bin/bash\nsomeone:x:{first}:100::/home/someone:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &db.group,
        format!("root:x:0:\nsomegroup:x:{}:\n", first + 1),
    )
    .unwrap();
    db
}

#[test]
fn each_service_of_each_home_gets_its_own_uid_kept_across_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let first = *kojibox_proc::SERVICE_IDS.start();
    let home_a = dir.path().join("a/app/state/service-users");
    let home_b = dir.path().join("b/app/state/service-users");
    let a_pg = kojibox_proc::own_service_user_in(&db, &home_a, "postgres").unwrap();
    let a_web = kojibox_proc::own_service_user_in(&db, &home_a, "web").unwrap();
    let b_pg = kojibox_proc::own_service_user_in(&db, &home_b, "postgres").unwrap();
    let uids = [a_pg.uid, a_web.uid, b_pg.uid];
    for user in [&a_pg, &a_web, &b_pg] {
        assert!(kojibox_proc::SERVICE_IDS.contains(&user.uid), "{user:?}");
        assert_eq!(user.uid, user.gid);
        // Neither the user in /etc/passwd nor the group in /etc/group is reused.
        assert!(user.uid > first + 1, "{user:?}");
        assert_eq!(
            kojibox_proc::lookup_user_in(&db.passwd, &user.name).unwrap(),
            *user,
            "programs can look themselves up"
        );
    }
    assert!(
        uids[0] != uids[1] && uids[1] != uids[2] && uids[0] != uids[2],
        "{uids:?}"
    );
    // Asked again: the same users, nothing added.
    let passwd = std::fs::read_to_string(&db.passwd).unwrap();
    assert_eq!(
        kojibox_proc::own_service_user_in(&db, &home_a, "postgres").unwrap(),
        a_pg
    );
    assert_eq!(std::fs::read_to_string(&db.passwd).unwrap(), passwd);
    let group = std::fs::read_to_string(&db.group).unwrap();
    assert!(
        group.contains(&format!("{}:!:{}:\n", a_pg.name, a_pg.uid)),
        "{group}"
    );
    assert!(
        passwd.contains("someone:x:"),
        "other lines are kept:\n{passwd}"
    );

    // Home b goes away: its user is forgotten when the next one is made, and its uid reused.
    std::fs::remove_file(&home_b).unwrap();
    let a_cache = kojibox_proc::own_service_user_in(&db, &home_a, "cache").unwrap();
    assert_eq!(
        a_cache.uid, b_pg.uid,
        "the stale uid is the first free one again"
    );
    let passwd = std::fs::read_to_string(&db.passwd).unwrap();
    assert!(!passwd.contains(&b_pg.name), "{passwd}");

    // The record travels with the home: in a fresh database it gets its uids back.
    let db2 = database(
        &std::fs::create_dir_all(dir.path().join("db2"))
            .map(|()| dir.path().join("db2"))
            .unwrap(),
    );
    assert_eq!(
        kojibox_proc::own_service_user_in(&db2, &home_a, "web")
            .unwrap()
            .uid,
        a_web.uid
    );
}
