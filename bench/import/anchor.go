package main

// The anchor: what `wp search-replace --precise` does, in PHP, on the
// same data and the same MariaDB as AIPress's rewrite. Debian 12 has no
// wp-cli package, so anchorPHP re-implements its algorithm (wp-cli's
// Search_Replace_Command::php_handle_col and SearchReplacer::
// run_recursively): for every table with the prefix and every text
// column but the primary key's (and guid, as ours skips it), select the
// primary keys of the rows whose column holds the search string (LIKE
// BINARY), then per row read the value, unserialise it with PHP's own
// unserialize (recursively: arrays, objects and strings that are
// themselves serialised), str_replace every string, serialise it again
// and UPDATE the row by its key when it changed. No WordPress bootstrap
// (wp-cli's costs about a third of a second more), mysqli with prepared
// statements instead of $wpdb (faster, if anything), autocommit as
// wp-cli. It replaces the literal string only — not the JSON-escaped,
// percent-encoded and scheme-relative forms ours also rewrites — so it
// changes fewer cells; both read the same rows.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const anchorPHP = `<?php
// wp search-replace --precise, without WordPress: argv: socket user password db prefix from to skip-columns(comma)
[, $sock, $user, $pass, $db, $prefix, $from, $to, $skip] = $argv;
$skip = array_filter(explode(',', $skip));
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$m = new mysqli('localhost', $user, $pass, $db, 0, $sock);
$m->set_charset('utf8mb4');

function run_recursively($data, $serialised, $from, $to, $level = 0, $visited = array()) {
	if ($level > 256) { return $data; }
	if (is_object($data) || is_array($data)) {
		if (in_array($data, $visited, true)) { return $data; }
		$visited[] = $data;
	}
	if (is_string($data) && ($u = @unserialize($data)) !== false) {
		$data = run_recursively($u, true, $from, $to, $level + 1);
	} elseif (is_array($data)) {
		foreach (array_keys($data) as $k) { $data[$k] = run_recursively($data[$k], false, $from, $to, $level + 1, $visited); }
	} elseif (is_object($data) && !($data instanceof __PHP_Incomplete_Class)) {
		foreach ($data as $k => $v) { $data->$k = run_recursively($v, false, $from, $to, $level + 1, $visited); }
	} elseif (is_string($data)) {
		$data = str_replace($from, $to, $data);
	}
	return $serialised ? serialize($data) : $data;
}

$t0 = hrtime(true);
$rep = ['rows_scanned' => 0, 'rows_changed' => 0, 'cells_changed' => 0, 'bytes_scanned' => 0];
$like = '%' . addcslashes($from, '_%\\') . '%';
$tables = $m->query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")->fetch_all();
foreach ($tables as [$table]) {
	if (strncmp($table, $prefix, strlen($prefix)) !== 0) { continue; }
	$pk = []; $text = [];
	foreach ($m->query("SELECT COLUMN_NAME, COLUMN_KEY, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" . $m->real_escape_string($table) . "' ORDER BY ORDINAL_POSITION") as $c) {
		if ($c['COLUMN_KEY'] === 'PRI') { $pk[] = $c['COLUMN_NAME']; continue; }
		if (in_array($c['DATA_TYPE'], ['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext'], true) && !in_array("$table." . $c['COLUMN_NAME'], $skip, true)) { $text[] = $c['COLUMN_NAME']; }
	}
	if (!$pk) { continue; }
	$pkSQL = implode(',', array_map(fn($c) => "` + "`$c`" + `", $pk));
	$where = implode(' AND ', array_map(fn($c) => "` + "`$c`" + ` = ?", $pk));
	$changedRows = [];
	foreach ($text as $col) {
		$sel = $m->prepare("SELECT $pkSQL FROM ` + "`$table`" + ` WHERE ` + "`$col`" + ` LIKE BINARY ?");
		$sel->bind_param('s', $like);
		$sel->execute();
		$keys = $sel->get_result()->fetch_all();
		$get = $m->prepare("SELECT ` + "`$col`" + ` FROM ` + "`$table`" + ` WHERE $where");
		$upd = $m->prepare("UPDATE ` + "`$table`" + ` SET ` + "`$col`" + ` = ? WHERE $where");
		foreach ($keys as $k) {
			$get->bind_param(str_repeat('s', count($k)), ...$k);
			$get->execute();
			[$value] = $get->get_result()->fetch_row();
			$key = implode("\0", $k);
			$rep['rows_scanned']++;
			$rep['bytes_scanned'] += strlen($value);
			$new = run_recursively($value, false, $from, $to);
			if ($new === $value) { continue; }
			$upd->bind_param('s' . str_repeat('s', count($k)), $new, ...$k);
			$upd->execute();
			$rep['cells_changed']++;
			$changedRows[$key] = true;
		}
	}
	$rep['rows_changed'] += count($changedRows);
}
$rep['seconds'] = (hrtime(true) - $t0) / 1e9;
echo json_encode($rep), "\n";
`

// AnchorResult is what the PHP anchor reports. RowsScanned counts a row
// once per column that matched (wp-cli reads row by row per column).
type AnchorResult struct {
	Seconds      float64 `json:"seconds"`
	RowsScanned  int64   `json:"rows_scanned"`
	RowsChanged  int64   `json:"rows_changed"`
	CellsChanged int64   `json:"cells_changed"`
	BytesScanned int64   `json:"bytes_scanned"`
}

// runAnchor runs anchorPHP with php8.2 over database db (root over sock)
// and returns its report.
func runAnchor(ctx context.Context, dir string, c rootConn, db, prefix, from, to string, skip []string) (*AnchorResult, error) {
	php, err := exec.LookPath("php8.2")
	if err != nil {
		return nil, fmt.Errorf("php8.2-cli not installed: %w", err)
	}
	script := filepath.Join(dir, "search-replace.php")
	if err := os.WriteFile(script, []byte(anchorPHP), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, php, "-d", "memory_limit=2G", "-d", "display_errors=stderr", script,
		c.Socket, c.User, c.Password, db, prefix, from, to, strings.Join(skip, ","))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("php anchor: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r AnchorResult
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return nil, fmt.Errorf("php anchor: %w: %s %s", err, out, stderr.String())
	}
	if r.Seconds <= 0 {
		r.Seconds = time.Since(t0).Seconds()
	}
	return &r, nil
}
