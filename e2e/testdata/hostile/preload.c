// A library that e2e/hostile_test.go compiles and drops into the hostile site's uploads: loaded with LD_PRELOAD
// into whatever a site's PHP starts (mail() runs /bin/sh), its constructor proves native code ran by writing
// the file named in AIPRESS_HOSTILE_MARK.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void aipress_hostile(void) {
	const char *mark = getenv("AIPRESS_HOSTILE_MARK");
	unsetenv("LD_PRELOAD");
	if (mark == NULL || *mark == '\0') {
		return;
	}
	FILE *f = fopen(mark, "w");
	if (f == NULL) {
		return;
	}
	fprintf(f, "uid=%d pid=%d\n", (int)getuid(), (int)getpid());
	fclose(f);
}
