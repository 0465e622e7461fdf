// SPDX-License-Identifier: GPL-2.0
/*
 * Test helper for the busybox smoke VM (static binary).
 *   hog                     touch memory 1 MiB at a time until killed
 *   hog pollwait FILE MS    read FILE, print "ready", then poll() it for
 *                           POLLPRI|POLLERR: prints "event" (exit 0) or
 *                           "timeout" (exit 1)
 *   hog hold MIB            touch MIB MiB, print "held", then sleep until
 *                           killed
 *   hog leave MIB           touch memory until MemAvailable is at most MIB
 *                           MiB, print "held", then keep it there (memory
 *                           the kernel gives back later is taken too) until
 *                           killed
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pollwait(const char *path, int ms)
{
	char buf[4096];
	struct pollfd p;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		perror(path);
		return 2;
	}
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	/* The caller changes the state only after this: no race with the read. */
	puts("ready");
	fflush(stdout);
	p.fd = fd;
	p.events = POLLPRI | POLLERR;
	if (poll(&p, 1, ms) > 0) {
		puts("event");
		return 0;
	}
	puts("timeout");
	return 1;
}

static long mem_available_mib(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

/* Reclaim returns page cache while we allocate: re-read after each MiB. */
static int leave(long mib)
{
	const size_t step = 1 << 20;
	int said = 0;

	for (;;) {
		long avail = mem_available_mib();

		if (avail < 0)
			return 1;
		if (avail > mib) {
			char *p = malloc(step);

			if (!p)
				return 1;
			memset(p, 0x5a, step);
			continue;
		}
		if (!said) {
			puts("held");
			fflush(stdout);
			said = 1;
		}
		usleep(100 * 1000);
	}
}

int main(int argc, char **argv)
{
	const size_t step = 1 << 20;
	int fd;

	if (argc == 4 && !strcmp(argv[1], "pollwait"))
		return pollwait(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "leave"))
		return leave(atol(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "hold")) {
		for (long i = atol(argv[2]); i > 0; i--) {
			char *p = malloc(step);

			if (!p)
				return 1;
			memset(p, 0x5a, step);
		}
		puts("held");
		fflush(stdout);
		for (;;)
			pause();
	}

	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1000", 4) != 4)
			perror("oom_score_adj");
		close(fd);
	}
	for (;;) {
		char *p = malloc(step);

		if (p)
			memset(p, 0x5a, step);
	}
}
