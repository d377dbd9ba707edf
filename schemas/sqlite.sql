-- SQLite schema for the embedded zun-compute-rs state store.
--
-- Derived from zun 18.0.0's MySQL schema (tests/fixtures/zun-schema-mysql.sql, built by
-- `zun-db-manage upgrade`, alembic head 3f2b36231bee), restricted to the tables the worker
-- touches. Column names, nullability, unique keys and foreign keys (with their ON DELETE
-- CASCADE clauses, or the lack of one) are the same; types are mapped to SQLite affinities:
--   int(11) / tinyint(1) -> INTEGER, float -> REAL, varchar(n) -> VARCHAR(n) (not enforced by
--   SQLite; the store validates lengths itself), text / mediumtext -> TEXT,
--   datetime -> DATETIME (stored as 'YYYY-MM-DD HH:MM:SS', naive UTC).
-- The store applies this file on every open (IF NOT EXISTS), with PRAGMA foreign_keys=ON and
-- WAL journaling set per connection.

CREATE TABLE IF NOT EXISTS `registry` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `uuid` VARCHAR(36) DEFAULT NULL,
  `name` VARCHAR(255) DEFAULT NULL,
  `domain` VARCHAR(255) NOT NULL,
  `username` VARCHAR(255) DEFAULT NULL,
  `password` VARCHAR(255) DEFAULT NULL,
  CONSTRAINT `uniq_registry0uuid` UNIQUE (`uuid`)
);

CREATE TABLE IF NOT EXISTS `container` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `uuid` VARCHAR(36) DEFAULT NULL,
  `name` VARCHAR(255) DEFAULT NULL,
  `image` VARCHAR(255) DEFAULT NULL,
  `command` TEXT DEFAULT NULL,
  `status` VARCHAR(20) DEFAULT NULL,
  `environment` TEXT DEFAULT NULL,
  `container_id` VARCHAR(255) DEFAULT NULL,
  `memory` VARCHAR(255) DEFAULT NULL,
  `task_state` VARCHAR(20) DEFAULT NULL,
  `cpu` REAL DEFAULT NULL,
  `workdir` VARCHAR(255) DEFAULT NULL,
  `ports` TEXT DEFAULT NULL,
  `hostname` VARCHAR(255) DEFAULT NULL,
  `labels` TEXT DEFAULT NULL,
  `status_reason` TEXT DEFAULT NULL,
  `image_pull_policy` TEXT DEFAULT NULL,
  `addresses` TEXT DEFAULT NULL,
  `host` VARCHAR(255) DEFAULT NULL,
  `restart_policy` TEXT DEFAULT NULL,
  `status_detail` VARCHAR(50) DEFAULT NULL,
  `image_driver` TEXT DEFAULT NULL,
  `interactive` INTEGER DEFAULT NULL,
  `websocket_url` VARCHAR(255) DEFAULT NULL,
  `websocket_token` VARCHAR(255) DEFAULT NULL,
  `security_groups` TEXT DEFAULT NULL,
  `auto_remove` INTEGER DEFAULT NULL,
  `runtime` VARCHAR(32) DEFAULT NULL,
  `disk` INTEGER DEFAULT NULL,
  `auto_heal` INTEGER DEFAULT NULL,
  `capsule_id` INTEGER DEFAULT NULL REFERENCES `container` (`id`) ON DELETE CASCADE,
  `started_at` DATETIME DEFAULT NULL,
  `privileged` INTEGER DEFAULT NULL,
  `healthcheck` TEXT DEFAULT NULL,
  `exposed_ports` TEXT DEFAULT NULL,
  `cpu_policy` VARCHAR(255) DEFAULT NULL,
  `cpuset` TEXT DEFAULT NULL,
  `registry_id` INTEGER DEFAULT NULL REFERENCES `registry` (`id`),
  `container_type` INTEGER DEFAULT 0,
  `tty` INTEGER DEFAULT NULL,
  `annotations` TEXT DEFAULT NULL,
  `cni_metadata` TEXT DEFAULT NULL,
  `entrypoint` TEXT DEFAULT NULL,
  CONSTRAINT `uniq_container0uuid` UNIQUE (`uuid`)
);
CREATE INDEX IF NOT EXISTS `ix_container_container_type` ON `container` (`container_type`);
CREATE INDEX IF NOT EXISTS `ix_container_host` ON `container` (`host`);
CREATE INDEX IF NOT EXISTS `ix_container_capsule_id` ON `container` (`capsule_id`);

CREATE TABLE IF NOT EXISTS `container_actions` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `action` VARCHAR(255) DEFAULT NULL,
  `container_uuid` VARCHAR(36) NOT NULL REFERENCES `container` (`uuid`) ON DELETE CASCADE,
  `request_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `start_time` DATETIME DEFAULT NULL,
  `finish_time` DATETIME DEFAULT NULL,
  `message` VARCHAR(255) DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS `request_id_idx` ON `container_actions` (`request_id`);
CREATE INDEX IF NOT EXISTS `container_uuid_idx` ON `container_actions` (`container_uuid`);

CREATE TABLE IF NOT EXISTS `container_actions_events` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `event` VARCHAR(255) DEFAULT NULL,
  `action_id` INTEGER NOT NULL REFERENCES `container_actions` (`id`) ON DELETE CASCADE,
  `start_time` DATETIME DEFAULT NULL,
  `finish_time` DATETIME DEFAULT NULL,
  `result` VARCHAR(255) DEFAULT NULL,
  `traceback` TEXT DEFAULT NULL,
  `details` TEXT DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS `action_id` ON `container_actions_events` (`action_id`);

CREATE TABLE IF NOT EXISTS `exec_instance` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `container_id` INTEGER NOT NULL REFERENCES `container` (`id`) ON DELETE CASCADE,
  `exec_id` VARCHAR(255) NOT NULL,
  `token` VARCHAR(255) DEFAULT NULL,
  `url` VARCHAR(255) DEFAULT NULL,
  CONSTRAINT `uniq_exec_instance0container_id_exec_id` UNIQUE (`container_id`, `exec_id`)
);

CREATE TABLE IF NOT EXISTS `image` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `uuid` VARCHAR(36) DEFAULT NULL,
  `image_id` VARCHAR(255) DEFAULT NULL,
  `repo` VARCHAR(255) DEFAULT NULL,
  `tag` VARCHAR(255) DEFAULT NULL,
  `size` VARCHAR(255) DEFAULT NULL,
  `host` VARCHAR(255) DEFAULT NULL,
  CONSTRAINT `uniq_image0repotaghost` UNIQUE (`repo`, `tag`, `host`)
);

CREATE TABLE IF NOT EXISTS `network` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `name` VARCHAR(255) DEFAULT NULL,
  `uuid` VARCHAR(36) DEFAULT NULL,
  `network_id` VARCHAR(255) DEFAULT NULL,
  `neutron_net_id` VARCHAR(255) DEFAULT NULL,
  `host` VARCHAR(255) DEFAULT NULL,
  CONSTRAINT `uniq_network0uuid` UNIQUE (`uuid`),
  CONSTRAINT `uniq_network0neutron_net_id_host` UNIQUE (`neutron_net_id`, `host`)
);

CREATE TABLE IF NOT EXISTS `volume` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `uuid` VARCHAR(36) NOT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `cinder_volume_id` VARCHAR(36) DEFAULT NULL,
  `volume_provider` VARCHAR(36) NOT NULL,
  `connection_info` TEXT DEFAULT NULL,
  `host` VARCHAR(255) DEFAULT NULL,
  `auto_remove` INTEGER DEFAULT NULL,
  `contents` TEXT DEFAULT NULL,
  CONSTRAINT `uniq_volume0uuid` UNIQUE (`uuid`)
);

-- volume_mapping.container_uuid has NO ON DELETE clause in zun's schema: the mappings must be
-- removed before the container row (the store's container_destroy does that).
CREATE TABLE IF NOT EXISTS `volume_mapping` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `uuid` VARCHAR(36) NOT NULL,
  `project_id` VARCHAR(255) DEFAULT NULL,
  `user_id` VARCHAR(255) DEFAULT NULL,
  `container_uuid` VARCHAR(36) DEFAULT NULL REFERENCES `container` (`uuid`),
  `container_path` VARCHAR(255) DEFAULT NULL,
  `volume_id` INTEGER NOT NULL REFERENCES `volume` (`id`) ON DELETE CASCADE,
  CONSTRAINT `uniq_volume_mapping0uuid` UNIQUE (`uuid`)
);
CREATE INDEX IF NOT EXISTS `volume_mapping_container_uuid` ON `volume_mapping` (`container_uuid`);
CREATE INDEX IF NOT EXISTS `volume_mapping_volume_id` ON `volume_mapping` (`volume_id`);

CREATE TABLE IF NOT EXISTS `zun_service` (
  `id` INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `report_count` INTEGER NOT NULL,
  `host` VARCHAR(255) DEFAULT NULL,
  `binary` VARCHAR(255) DEFAULT NULL,
  `disabled` INTEGER DEFAULT NULL,
  `disabled_reason` VARCHAR(255) DEFAULT NULL,
  `last_seen_up` DATETIME DEFAULT NULL,
  `forced_down` INTEGER DEFAULT NULL,
  `availability_zone` VARCHAR(255) DEFAULT NULL,
  CONSTRAINT `uniq_zun_service0host0binary` UNIQUE (`host`, `binary`)
);

CREATE TABLE IF NOT EXISTS `compute_node` (
  `created_at` DATETIME DEFAULT NULL,
  `updated_at` DATETIME DEFAULT NULL,
  `uuid` VARCHAR(36) NOT NULL PRIMARY KEY,
  `hostname` VARCHAR(255) NOT NULL,
  `numa_topology` TEXT DEFAULT NULL,
  `mem_total` INTEGER NOT NULL,
  `mem_free` INTEGER NOT NULL,
  `mem_available` INTEGER NOT NULL,
  `total_containers` INTEGER NOT NULL,
  `running_containers` INTEGER NOT NULL,
  `paused_containers` INTEGER NOT NULL,
  `stopped_containers` INTEGER NOT NULL,
  `cpus` INTEGER NOT NULL,
  `cpu_used` REAL NOT NULL,
  `architecture` VARCHAR(32) DEFAULT NULL,
  `os_type` VARCHAR(32) DEFAULT NULL,
  `os` VARCHAR(64) DEFAULT NULL,
  `kernel_version` VARCHAR(128) DEFAULT NULL,
  `labels` TEXT DEFAULT NULL,
  `mem_used` INTEGER NOT NULL,
  `pci_stats` TEXT DEFAULT NULL,
  `disk_total` INTEGER NOT NULL,
  `disk_used` INTEGER NOT NULL,
  `disk_quota_supported` INTEGER NOT NULL DEFAULT 0,
  `runtimes` TEXT DEFAULT NULL,
  `enable_cpu_pinning` INTEGER NOT NULL DEFAULT 0,
  `rp_uuid` VARCHAR(36) NOT NULL,
  CONSTRAINT `uniq_compute_node0rp_uuid` UNIQUE (`rp_uuid`)
);
