/* main.c - the veranda command line. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "version") == 0) {
		printf("veranda 0.1.0\n");
		return 0;
	}
	fprintf(stderr, "usage: veranda COMMAND\n");
	return 2;
}
