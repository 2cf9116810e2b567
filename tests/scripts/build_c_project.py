# Builds a small multi-file C program with `make -j2` (gcc: cpp, cc1, as,
# collect2/ld as child processes, pipes and temporary files), runs it and
# prints what a user would look at: make's exit status, the program's
# output and the object files produced.
import os
import subprocess

SOURCES = {
    "Makefile": """\
CFLAGS = -O2 -Wall -Werror
OBJS = main.o stats.o text.o

demo: $(OBJS)
\t$(CC) -o $@ $(OBJS) -lm

%.o: %.c demo.h
\t$(CC) $(CFLAGS) -c $<

clean:
\trm -f demo $(OBJS)
""",
    "demo.h": """\
#pragma once
double mean(const double *v, int n);
double stddev(const double *v, int n);
void shout(char *s);
""",
    "main.c": """\
#include <stdio.h>
#include "demo.h"
int main(void) {
    double v[] = {2, 4, 4, 4, 5, 5, 7, 9};
    char msg[] = "built inside the sandbox";
    shout(msg);
    printf("%s: mean %.2f stddev %.2f\\n", msg, mean(v, 8), stddev(v, 8));
    return 0;
}
""",
    "stats.c": """\
#include <math.h>
#include "demo.h"
double mean(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s / n;
}
double stddev(const double *v, int n) {
    double m = mean(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / n);
}
""",
    "text.c": """\
#include <ctype.h>
#include "demo.h"
void shout(char *s) {
    for (; *s; s++) *s = toupper((unsigned char)*s);
}
""",
}

work = "/tmp/cproject"
os.makedirs(work, exist_ok=True)
for name, text in SOURCES.items():
    with open(os.path.join(work, name), "w") as f:
        f.write(text)
make = subprocess.run(["make", "-j2", "-s"], cwd=work, capture_output=True, text=True)
print("make status:", make.returncode)
print(make.stderr, end="")
run = subprocess.run(["./demo"], cwd=work, capture_output=True, text=True)
print("demo status:", run.returncode)
print(run.stdout, end="")
print("outputs:", sorted(n for n in os.listdir(work) if n.endswith(".o") or n == "demo"))
