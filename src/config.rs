//! Configuration (zun.conf INI + environment overrides).
