//! The store under contention and connection loss, against the real MariaDB (one private
//! database per test, zun's schema by `zun-db-manage`): a deadlock provoked with two real
//! transactions is retried and the operation applies once; a connection killed under a
//! waiting operation is replaced and the operation retried; idle connections killed by
//! the server are replaced before use. (MariaDB restarted under a stream of creates:
//! tests/fault_injection.rs.)
mod store_common;

use sqlx::{Connection, Executor, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store_common::{scenarios::node_record, TestDb};
use zun_compute_rs::store::retry::RetryPolicy;
use zun_compute_rs::store::Store;

/// Short pauses so the tests are quick; the classification is the production one.
fn quick() -> RetryPolicy {
    RetryPolicy::from_options(20, 0.1, true, 0.5)
}

async fn setup(node: &str) -> (TestDb, Arc<Store>) {
    let db = TestDb::mariadb().await;
    let store = db.open().await.with_retry_policy(quick());
    let mut rec = node_record(node);
    rec.mem_used = 0;
    rec.mem_free = rec.mem_total;
    store.compute_node_upsert(&rec).await.unwrap();
    (db, Arc::new(store))
}

async fn conn(db: &TestDb) -> sqlx::MySqlConnection {
    sqlx::MySqlConnection::connect(&db.mysql_db_url()).await.expect("test connection")
}

/// Polls until the store's claim (an UPDATE of compute_node) waits in InnoDB for a row
/// lock of this database's compute_node (a statement merely listed in the process list
/// may not have asked for the row yet); returns its connection id. The wait is read
/// from `SHOW ENGINE INNODB STATUS`, which is computed on every call:
/// information_schema.INNODB_TRX is a server-wide cache that is refreshed only once no
/// one has read it for 0.1 s, so polling it (from parallel tests too) can keep it stale.
async fn wait_for_lock_wait(probe: &mut sqlx::MySqlConnection, db_name: &str, not: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let table = format!("of table `{db_name}`.`compute_node`");
    loop {
        let status: String = sqlx::query("SHOW ENGINE INNODB STATUS").fetch_one(&mut *probe).await.unwrap().get(2);
        let ids: Vec<i64> = status
            .split("---TRANSACTION ")
            .filter(|t| t.contains("\nLOCK WAIT ") && t.contains(&table) && t.contains("\nUPDATE `compute_node`"))
            .filter_map(|t| t.split("thread id ").nth(1)?.split(',').next()?.trim().parse().ok())
            .filter(|id| *id != not)
            .collect();
        if let [id] = ids[..] {
            return id;
        }
        assert!(ids.len() < 2, "two claims at once: {ids:?}");
        assert!(Instant::now() < deadline, "the store's claim never waited for the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn usage(db: &TestDb, node: &str) -> (String, String) {
    let row = db.raw_row("compute_node", &["running_containers", "mem_used"], &format!("`hostname`='{node}'")).await;
    (row["running_containers"].clone().unwrap_or_default(), row["mem_used"].clone().unwrap_or_default())
}

async fn deadlocks(probe: &mut sqlx::MySqlConnection) -> i64 {
    let v: String = sqlx::query("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'").fetch_one(&mut *probe).await.unwrap().get(1);
    v.parse().unwrap()
}

/// A real deadlock: the test's transaction (made heavy, so InnoDB picks the store's as
/// the victim) holds a shared lock on the compute_node row; the store's claim asks for
/// it exclusively and waits; the test's transaction then updates the row, closing the
/// cycle. MariaDB answers the store with 1213; the store retries, waits for the test's
/// commit and applies the claim exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_is_retried_and_applies_once() {
    let node = "dl-node";
    let (db, store) = setup(node).await;
    let name = db.mysql_db_url().rsplit('/').next().unwrap().to_string();
    let mut probe = conn(&db).await;
    let before = deadlocks(&mut probe).await;
    let mut t1 = conn(&db).await;
    t1.execute("CREATE TABLE `zunrs_ballast` (`id` INT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    t1.execute("BEGIN").await.unwrap();
    let values: Vec<String> = (0..500).map(|i| format!("({i})")).collect();
    t1.execute(format!("INSERT INTO `zunrs_ballast` VALUES {}", values.join(",")).as_str()).await.unwrap();
    t1.execute(format!("SELECT `uuid` FROM `compute_node` WHERE `hostname` = '{node}' LOCK IN SHARE MODE").as_str()).await.unwrap();

    let s = store.clone();
    let claim = tokio::spawn(async move { s.compute_node_add_usage(node, 0.5, 64, 1, 1).await });
    wait_for_lock_wait(&mut probe, &name, -1).await;
    // Closes the cycle: MariaDB must pick a victim, and it is the light one (the store).
    let update = tokio::time::timeout(
        Duration::from_secs(30),
        t1.execute(format!("UPDATE `compute_node` SET `cpu_used` = `cpu_used` WHERE `hostname` = '{node}'").as_str()),
    )
    .await
    .expect("the test's UPDATE returned (a deadlock was detected)");
    update.expect("the test's transaction was not the victim");
    assert!(deadlocks(&mut probe).await > before, "MariaDB counted no deadlock");
    // The store's retry now waits for the test's commit.
    wait_for_lock_wait(&mut probe, &name, -1).await;
    assert!(!claim.is_finished());
    t1.execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), claim).await.expect("claim finished").unwrap().expect("claim succeeded");
    let rec = store.compute_node_get(node).await.unwrap().expect("the node");
    assert_eq!(rec.running_containers, 1);
    assert_eq!(rec.mem_used, 64);
    assert_eq!(usage(&db, node).await, ("1".to_string(), "64".to_string()), "applied exactly once");
}

/// The store's connection is killed by the server while its transaction waits for a
/// lock: the operation gets "lost connection", is retried on a new connection, and
/// applies once after the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_under_an_operation_is_retried() {
    let node = "kill-node";
    let (db, store) = setup(node).await;
    let name = db.mysql_db_url().rsplit('/').next().unwrap().to_string();
    let mut probe = conn(&db).await;
    let mut t1 = conn(&db).await;
    t1.execute("BEGIN").await.unwrap();
    t1.execute(format!("SELECT `uuid` FROM `compute_node` WHERE `hostname` = '{node}' FOR UPDATE").as_str()).await.unwrap();
    let s = store.clone();
    let claim = tokio::spawn(async move { s.compute_node_add_usage(node, 0.5, 64, 1, 1).await });
    let waiting = wait_for_lock_wait(&mut probe, &name, -1).await;
    probe.execute(format!("KILL CONNECTION {waiting}").as_str()).await.unwrap();
    // The retry waits on a new connection for the same lock.
    let mut claim = claim;
    tokio::select! {
        _ = wait_for_lock_wait(&mut probe, &name, waiting) => {}
        r = &mut claim => panic!("the claim ended without waiting again: {r:?}"),
    }
    t1.execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), claim).await.expect("claim finished").unwrap().expect("claim succeeded");
    assert_eq!(store.compute_node_get(node).await.unwrap().expect("the node").running_containers, 1);
    assert_eq!(usage(&db, node).await, ("1".to_string(), "64".to_string()), "applied exactly once");
}

/// Every connection of the pool killed while idle (as a MariaDB restart or its
/// `wait_timeout` does): the next operations and the readiness ping work at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_killed_are_replaced() {
    let node = "idle-node";
    let (db, store) = setup(node).await;
    let name = db.mysql_db_url().rsplit('/').next().unwrap().to_string();
    // Several connections in the pool.
    let reads: Vec<_> = (0..4).map(|_| store.compute_node_get(node)).collect();
    for r in futures_util::future::join_all(reads).await {
        r.unwrap();
    }
    let mut probe = conn(&db).await;
    let own = probe.fetch_one("SELECT CAST(CONNECTION_ID() AS SIGNED)").await.unwrap().get::<i64, _>(0);
    let ids: Vec<i64> = sqlx::query("SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ?")
        .bind(&name)
        .bind(own)
        .fetch_all(&mut probe)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i64, _>(0))
        .collect();
    assert!(!ids.is_empty(), "the store holds no connection");
    for id in &ids {
        probe.execute(format!("KILL CONNECTION {id}").as_str()).await.unwrap();
    }
    store.ping().await.expect("ping after the kill");
    store.compute_node_add_usage(node, 0.5, 64, 1, 1).await.expect("claim after the kill");
    assert_eq!(store.compute_node_get(node).await.unwrap().expect("the node").running_containers, 1);
}

/// Connections of the database `db_name` other than `not` (the test's own).
async fn connections(probe: &mut sqlx::MySqlConnection, db_name: &str, not: i64) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ? AND COMMAND <> 'Killed'")
        .bind(db_name)
        .bind(not)
        .fetch_one(&mut *probe)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// `[database] max_pool_size` and `max_overflow` (oslo.db's names) bound the connections
/// of the store the worker opens (`worker::open_store` from a zun.conf): the test holds a
/// write lock on `container`, eight reads of it are started at once, and each one that
/// gets a connection waits on the lock holding it. The pool opens exactly its cap
/// (counted in information_schema.PROCESSLIST by database name) while the others wait for
/// a connection; when the lock goes, all eight finish, and the count never passed the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_size_and_overflow_bound_the_connections() {
    let db = TestDb::mariadb().await;
    let name = db.mysql_db_url().rsplit('/').next().unwrap().to_string();
    for (size, overflow, cap) in [(2, 0, 2), (2, 2, 4)] {
        let conf = db.dir.path().join(format!("pool-{size}-{overflow}.conf"));
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\nhost = pool-node\n[database]\nconnection = {}\nmax_pool_size = {size}\nmax_overflow = {overflow}\npool_timeout = 60\n",
                db.url.as_deref().unwrap()
            ),
        )
        .unwrap();
        let settings = zun_compute_rs::config::Settings::load(&[&conf], std::iter::empty()).expect("conf");
        let store = Arc::new(zun_compute_rs::worker::open_store(&settings).await.expect("open_store"));

        let mut lock = conn(&db).await;
        let me: i64 = sqlx::query("SELECT CAST(CONNECTION_ID() AS SIGNED)").fetch_one(&mut lock).await.unwrap().get(0);
        let mut probe = conn(&db).await;
        let probe_id: i64 = sqlx::query("SELECT CAST(CONNECTION_ID() AS SIGNED)").fetch_one(&mut probe).await.unwrap().get(0);
        lock.execute("LOCK TABLES `container` WRITE").await.unwrap();
        let reads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.containers_by_host("pool-node").await })
            })
            .collect();
        // Until the pool holds `cap` connections, all of them waiting on the lock.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen_max = 0;
        loop {
            let n = connections(&mut probe, &name, me).await - 1; // minus the probe
            seen_max = seen_max.max(n);
            assert!(n <= cap, "max_pool_size {size} + max_overflow {overflow}: {n} connections");
            let waiting: i64 = sqlx::query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID NOT IN (?, ?) AND STATE LIKE '%metadata lock%'",
            )
            .bind(&name)
            .bind(me)
            .bind(probe_id)
            .fetch_one(&mut probe)
            .await
            .unwrap()
            .get(0);
            if waiting == cap {
                break;
            }
            assert!(Instant::now() < deadline, "the pool never held {cap} connections waiting on the lock ({n} open, {waiting} waiting)");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(reads.iter().all(|r| !r.is_finished()), "a read finished while the table was locked");
        lock.execute("UNLOCK TABLES").await.unwrap();
        for r in reads {
            r.await.unwrap().expect("read after the lock");
        }
        let n = connections(&mut probe, &name, me).await - 1;
        seen_max = seen_max.max(n);
        assert!(n <= cap, "{n} connections after the reads, cap {cap}");
        println!("POOL max_pool_size={size} max_overflow={overflow}: {seen_max} connections at most, {cap} waiting on the lock at once");
        store.close().await;
    }
}
