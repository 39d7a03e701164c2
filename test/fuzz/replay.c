/*
 * replay.c — a main() for a libFuzzer harness built without libFuzzer: it feeds
 * each file named on the command line (or each file of each directory named) to
 * LLVMFuzzerTestOneInput once.  Linked with the ordinary compiler, it lets
 * valgrind check the harness over the seed corpus and every past crash
 * (`make valgrind`), where the ASan-instrumented fuzzer cannot run.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

extern int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Run the harness on one file; returns 0, or 1 when the file cannot be read. */
static int
ReplayFile(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *data;
	long		size;

	if (f == NULL)
	{
		fprintf(stderr, "replay: cannot open %s\n", path);
		return 1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		fprintf(stderr, "replay: cannot read %s\n", path);
		return 1;
	}
	/* An exact-size copy, so that reading past the input is an error valgrind sees. */
	data = malloc(size > 0 ? (size_t) size : 1);
	if (data == NULL || fread(data, 1, (size_t) size, f) != (size_t) size)
	{
		free(data);
		fclose(f);
		fprintf(stderr, "replay: cannot read %s\n", path);
		return 1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, (size_t) size);
	free(data);
	return 0;
}

/* Run the harness on every regular file of a directory, in name order. */
static int
ReplayDir(const char *dir, int *count)
{
	struct dirent **names;
	int			n = scandir(dir, &names, NULL, alphasort);
	int			failed = 0;
	int			i;

	if (n < 0)
	{
		fprintf(stderr, "replay: cannot list %s\n", dir);
		return 1;
	}
	for (i = 0; i < n; i++)
	{
		char	   *path;
		struct stat st;

		path = malloc(strlen(dir) + strlen(names[i]->d_name) + 2);
		if (path == NULL)
			return 1;
		sprintf(path, "%s/%s", dir, names[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		{
			failed |= ReplayFile(path);
			(*count)++;
		}
		free(path);
		free(names[i]);
	}
	free(names);
	return failed;
}

int
main(int argc, char **argv)
{
	int			failed = 0;
	int			count = 0;
	int			i;

	for (i = 1; i < argc; i++)
	{
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			failed |= ReplayDir(argv[i], &count);
		else
		{
			failed |= ReplayFile(argv[i]);
			count++;
		}
	}
	printf("replayed %d inputs\n", count);
	return failed;
}
