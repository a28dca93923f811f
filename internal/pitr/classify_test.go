package pitr

import "testing"

// TestBarrierClassification: which statements from outside a site's
// database replace it (barriers) and which do not.
func TestBarrierClassification(t *testing.T) {
	for q, want := range map[string]int{
		"CREATE DATABASE IF NOT EXISTS `wp_a` CHARACTER SET utf8mb4":                  dbNoop,
		"/*!40000 ALTER DATABASE `wp_a` */ ALTER DATABASE wp_a CHARACTER SET utf8mb4": dbNoop,
		"DROP DATABASE IF EXISTS `wp_a`":                                              dbReplaced,
		"CREATE DATABASE `wp_a`":                                                      dbReplaced,
		"create or replace database wp_a":                                             dbReplaced,
		"CREATE TABLE t (id int)":                                                     dbNone,
		"DROP TABLE t":                                                                dbNone,
	} {
		if got := databaseStmt([]byte(q)); got != want {
			t.Errorf("databaseStmt(%q) = %d, want %d", q, got, want)
		}
	}
	for q, want := range map[string]bool{
		"RENAME TABLE `wp_a`.`t` TO `wp_a_ro`.`t`, `wp_a_rs`.`t` TO `wp_a`.`t`": true,
		"DROP TABLE wp_a.t":                                       true,
		"CREATE USER IF NOT EXISTS 'wp_a'@'localhost'":            false,
		"GRANT ALL ON `wp_a`.* TO 'wp_a'@'localhost'":             false,
		"ALTER USER 'wp_a'@'localhost' IDENTIFIED BY 'x'":         false,
		"DROP TABLE `wp_a_rs`.`t`":                                false,
		"DROP TABLE xwp_a.t":                                      false,
		"INSERT INTO other.t SELECT * FROM `wp_a`.`t` /* read */": true,
	} {
		got := !accountStmt([]byte(q)) && mentions([]byte(q), "wp_a")
		if got != want {
			t.Errorf("barrier(%q) = %v, want %v", q, got, want)
		}
	}
}
