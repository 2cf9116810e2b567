# Filesystem workloads a real container runs (issue 4's "done when"): a
# tar round trip of /usr/share/doc, a git repository, sqlite3 in WAL mode
# (shared mmap of the -shm file), compileall of the stdlib into a scratch
# directory, and a count of `find / -xdev`. Prints only what must be the
# same under any correct runtime; cleans up after itself.
set -e
# /tmp is left out: other tests (under runc, which writes to the shared
# fixture) may be using it at the same time.
echo "find -xdev: $(find / -xdev -path /tmp -prune -o -print 2>/dev/null | wc -l)"
d=$(mktemp -d /tmp/fs-workloads.XXXXXX)
trap 'rm -rf "$d"' EXIT
cd "$d"

tar czf doc.tgz -C /usr/share doc
mkdir x && tar xzf doc.tgz -C x
(cd /usr/share/doc && find . -type f -exec sha256sum {} + | sort) > a
(cd x/doc && find . -type f -exec sha256sum {} + | sort) > b
cmp a b && echo "tar round trip: $(wc -l < a) files identical"

mkdir repo && cd repo
git init -q -b main .
git config user.email test@example.com && git config user.name Test
for i in 1 2 3; do echo "line $i" > "f$i.txt"; git add "f$i.txt"; git commit -q -m "commit $i"; done
git log --format=%s | tr '\n' ' '; echo
git mv f1.txt moved.txt && git commit -q -m move && git status --short | wc -l
git gc -q && git fsck --no-progress && echo "git fsck ok"
cd "$d"

sqlite3 t.db "PRAGMA journal_mode=WAL;"
{ echo "create table t(a integer, b text); begin;"
  for i in $(seq 10000); do echo "insert into t values($i,'row $i');"; done
  echo "commit;"; } | sqlite3 t.db
sqlite3 t.db "select count(*), sum(a) from t; pragma integrity_check;"

PYTHONPYCACHEPREFIX="$d/pyc" python3 -m compileall -q /usr/lib/python3.11 >/dev/null
echo "compileall: $(find "$d/pyc" -name '*.pyc' | wc -l) pyc files"
