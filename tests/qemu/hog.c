/* Allocates and touches memory until the OOM killer ends it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
	for (size_t i = 0; mb == 0 || i < mb; i++) {
		char *p = malloc(1 << 20);
		if (!p) { sleep(1); continue; }
		memset(p, (int)i | 1, 1 << 20);
	}
	pause();
	return 0;
}
