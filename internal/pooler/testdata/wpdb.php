<?php
// Connects the way WordPress' wpdb does (DB_HOST "localhost:/socket"),
// runs what it runs on connect, then a few statements; prints JSON.
mysqli_report(MYSQLI_REPORT_OFF);
$host = getenv('DB_HOST');
$out = [];
$socket = null;
if (str_starts_with($host, 'localhost:/')) {
    $socket = substr($host, strlen('localhost:'));
    $host = 'localhost';
}
$m = mysqli_init();
$ok = @mysqli_real_connect($m, $host, getenv('DB_USER'), getenv('DB_PASSWORD'), null, null, $socket, 0);
if (!$ok) {
    echo json_encode(['connect_errno' => mysqli_connect_errno(), 'connect_error' => mysqli_connect_error()]), "\n";
    exit(0);
}
$out['server_info'] = mysqli_get_server_info($m);
if (!mysqli_select_db($m, getenv('DB_NAME'))) {
    echo json_encode(['select_db_errno' => mysqli_errno($m), 'select_db_error' => mysqli_error($m)]), "\n";
    exit(0);
}
mysqli_set_charset($m, 'utf8mb4');
mysqli_query($m, "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_520_ci");
$r = mysqli_query($m, "SELECT @@SESSION.sql_mode");
$mode = mysqli_fetch_row($r)[0];
$modes = array_diff(explode(',', $mode), ['NO_ZERO_DATE', 'ONLY_FULL_GROUP_BY', 'STRICT_TRANS_TABLES', 'STRICT_ALL_TABLES', 'TRADITIONAL', 'ANSI']);
mysqli_query($m, "SET SESSION sql_mode='" . mysqli_real_escape_string($m, implode(',', $modes)) . "'");
mysqli_query($m, "CREATE TABLE IF NOT EXISTS posts (ID bigint unsigned AUTO_INCREMENT PRIMARY KEY, title text) DEFAULT CHARSET utf8mb4");
mysqli_query($m, "INSERT INTO posts (title) VALUES ('Grüße ✓')");
$out['insert_id'] = mysqli_insert_id($m);
$r = mysqli_query($m, "SELECT SQL_CALC_FOUND_ROWS title FROM posts ORDER BY ID DESC LIMIT 1");
$out['title'] = mysqli_fetch_row($r)[0];
$r = mysqli_query($m, "SELECT FOUND_ROWS()");
$out['found_rows'] = (int)mysqli_fetch_row($r)[0];
$r = mysqli_query($m, "SELECT @@collation_connection, @@sql_mode");
$row = mysqli_fetch_row($r);
$out['collation'] = $row[0];
$out['strict'] = str_contains($row[1], 'STRICT');
$st = mysqli_prepare($m, "SELECT title FROM posts WHERE ID = ?");
$id = $out['insert_id'];
mysqli_stmt_bind_param($st, 'i', $id);
mysqli_stmt_execute($st);
mysqli_stmt_bind_result($st, $t);
mysqli_stmt_fetch($st);
$out['prepared'] = $t;
mysqli_stmt_close($st);
$out['ping'] = mysqli_ping($m);
mysqli_close($m);
echo json_encode($out), "\n";
