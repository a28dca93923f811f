<?php
// Calls a stored procedure that returns a result set (mysqli, as plugins
// do) and prints its rows and the error, if any, as JSON.
mysqli_report(MYSQLI_REPORT_OFF);
$m = mysqli_init();
$ok = @mysqli_real_connect($m, 'localhost', getenv('DB_USER'), getenv('DB_PASSWORD'), getenv('DB_NAME'), null, getenv('DB_SOCKET'), 0);
if (!$ok) {
    echo json_encode(['connect_errno' => mysqli_connect_errno(), 'connect_error' => mysqli_connect_error()]), "\n";
    exit(0);
}
$out = ['rows' => []];
if (!mysqli_multi_query($m, "CALL pooler_proc(3)")) {
    $out['errno'] = mysqli_errno($m);
    $out['error'] = mysqli_error($m);
} else {
    do {
        if ($r = mysqli_store_result($m)) {
            while ($row = mysqli_fetch_row($r)) {
                $out['rows'][] = $row[0];
            }
            mysqli_free_result($r);
        }
    } while (mysqli_more_results($m) && mysqli_next_result($m));
}
$r = mysqli_query($m, "SELECT 'after'");
$out['after'] = $r ? mysqli_fetch_row($r)[0] : mysqli_error($m);
mysqli_close($m);
echo json_encode($out), "\n";
