# The shell suite (issue 15): files, directories, symlinks, pipes and
# FIFOs, redirections, signals and traps, processes, credentials and
# limits, /proc, as busybox's ash sees them. It runs as init on Debian's
# Linux 6.1 (the reference) and on the guest kernel, natively and under
# the hypervisor (ci/qemu-tests/tests/shell_suite.rs); every check must
# pass on both. Each check: t NAME EXPECTED 'COMMANDS' — the commands run
# in a subshell (eval) from a scratch directory, and their standard output
# and error together must equal EXPECTED. The last line counts them.
pass=0
fail=0
t() {
    name=$1 want=$2
    got=$(cd /tmp/sh && eval "$3" 2>&1)
    if [ "$got" = "$want" ]; then
        pass=$((pass + 1))
        echo "ok - $name"
    else
        fail=$((fail + 1))
        echo "FAIL - $name: got [$got], want [$want]"
    fi
}
mkdir -p /tmp/sh /proc
mount -t proc proc /proc
echo "shell: start"

# Files and directories.
t "write and read a file" hi 'echo hi > f; cat f'
t "append" "a,b," 'echo a > g; echo b >> g; cat g | tr "\n" ,'
t "mkdir -p and rmdir" ok 'mkdir -p d1/d2/d3 && rmdir d1/d2/d3 d1/d2 d1 && echo ok'
t "symlink and readlink" f 'ln -s f sl; readlink sl'
t "read through a symlink" hi 'cat sl'
t "a dangling symlink" nofile 'ln -s nowhere dl; cat dl 2>/dev/null || echo nofile'
t "hard link count" 2 'ln f hl; stat -c %h f'
t "unlink drops the count" 1 'rm hl; stat -c %h f'
t "rename" "hi gone" 'cp f f1; mv f1 f2; echo $(cat f2) $([ -e f1 ] || echo gone)'
t "ls lists in order" "a b c " 'mkdir ls1; touch ls1/b ls1/a ls1/c; ls ls1 | tr "\n" " "'
t "file size" 5 'printf 12345 > s5; stat -c %s s5'
t "truncate by redirection" 1 'echo > s5; stat -c %s s5'
t "head -c of a file" 4096 'seq 1 2000 > big0; head -c 4096 big0 > z; stat -c %s z'
t "chmod" 640 'touch m; chmod 640 m; stat -c %a m'
t "umask on create" 640 'umask 027; touch um; stat -c %a um'
t "umask on mkdir" 755 'umask 022; mkdir md; stat -c %a md'
t "cd and pwd" /tmp/sh/p1/p2 'mkdir -p p1/p2; cd p1/p2; pwd'
t "cd .." /tmp/sh/p1 'cd p1/p2/..; pwd'
t "getcwd through a symlink is physical" /tmp/sh/p1/p2 'ln -s p1/p2 lp; cd lp; /bin/pwd -P'
t "test -d -f -L" yes '[ -d p1 ] && [ -f s5 ] && [ -L sl ] && echo yes'
t "rename over a file" 1 'echo 1 > r1; echo 2 > r2; mv r1 r2; cat r2'
t "rm -r a tree" removed 'mkdir -p tr/a/b; touch tr/a/b/c; rm -r tr; [ -e tr ] || echo removed'
t "rmdir of a non-empty directory fails" busy 'mkdir ne; touch ne/x; rmdir ne 2>/dev/null || echo busy'
t "a large file" "20000 20000" 'seq 1 20000 > big; echo $(wc -l < big) $(tail -n 1 big)'
t "cp keeps the bytes" 20000 'cp big big2; tail -n 1 big2'
t "mkdir of an existing name fails" exists 'mkdir ex; mkdir ex 2>/dev/null || echo exists'
t "a path through a file is ENOTDIR" notdir 'cat f/x 2>/dev/null || echo notdir'
t "symlink loop" loop 'ln -s lo1 lo2; ln -s lo2 lo1; cat lo1 2>/dev/null || echo loop'
t "touch creates empty" 0 'touch e0; stat -c %s e0'
t "hidden files" ".h" 'mkdir hd; touch hd/.h; ls -a hd | grep "^\.h"'

# Pipes, FIFOs and redirections.
t "a pipeline" 19 'seq 1 100 | grep 5 | wc -l'
t "a large transfer through a pipe" 288894 'seq 1 50000 | wc -c'
t "a reader that stops early (SIGPIPE)" 1 'seq 1 1000000 | head -n 1'
t "pipeline status is the last's" 0 'false | true; echo $?'
t "pipeline status when the last fails" 1 'true | false; echo $?'
t "nested command substitution" deep 'echo $(echo $(echo deep))'
t "here-document" line 'cat <<EOF
line
EOF'
t "stderr to a file" err 'ls /nonexistent 2>e.txt; [ -s e.txt ] && echo err'
t "2>&1 into a pipe" "err,out," '{ echo out; echo err >&2; } 2>&1 | sort | tr "\n" ,'
t "a FIFO" via-fifo 'mkfifo ff; (echo via-fifo > ff &); cat ff'
t "read from a pipe" b 'echo "a b" | { read x y; echo $y; }'
t "while read" 123 'seq 1 3 | while read n; do printf %s $n; done'
t "input redirection" hi 'cat < f'
t "exec redirection in a subshell" x 'exec 3> fd3; echo x >&3; exec 3>&-; cat fd3'
t "noclobber" kept 'set -C; { echo new > f; } 2>err.nc || echo kept'

# Processes, exit status and signals.
t "background and wait" 0 'sleep 0 & wait $!; echo $?'
t "exit status" 7 'sh -c "exit 7"; echo $?'
t "killed by SIGKILL: 128 + 9" "Killed
137" 'sh -c "kill -9 \$\$"; echo $?'
t "a trap catches SIGUSR1" caught 'sh -c "trap \"echo caught\" USR1; kill -USR1 \$\$"'
t "an EXIT trap" bye 'sh -c "trap \"echo bye\" EXIT; true"'
t "an ignored SIGTERM" alive 'sh -c "trap \"\" TERM; kill -TERM \$\$; echo alive"'
t "SIGTERM ends a sleeper" "Terminated
143" 'sleep 100 & p=$!; kill $p; wait $p; echo $?'
t "kill -0 of a live process" 0 'sleep 100 & p=$!; kill -0 $p; r=$?; kill $p; echo $r'
t "many children" done 'for i in 1 2 3 4 5 6 7 8; do sh -c "exit $i" & done; wait; echo done'
t "fifty fork+exec" 50 'i=0; while [ $i -lt 50 ]; do /bin/true; i=$((i+1)); done; echo $i'
t "sleep" slept 'sleep 0.1; echo slept'
t "environment passing" bar 'FOO=bar sh -c "echo \$FOO"'
t "export" y 'export X1=y; sh -c "echo \$X1"'
t "env -i" none 'env -i sh -c "echo \${HOME:-none}"'
t "PATH lookup (an applet is found as itself)" ls 'command -v ls'
t "PATH lookup of a program" /bin/tests 'command -v tests'
t "exec replaces the shell" replaced 'sh -c "exec echo replaced"'
t "command not found is 127" 127 'nosuchcmd 2>/dev/null; echo $?'
t "a subshell's pid is another" differ 'a=$(sh -c "echo \$\$"); [ "$a" != "$$" ] && echo differ'

# Credentials, limits, the system.
t "id is root" 0 'id -u'
t "ulimit -n" 1024 'ulimit -n'
t "ulimit -n lowered in a subshell" 64 '(ulimit -n 64; ulimit -n)'
t "arithmetic" 1024 'echo $((2**10))'
t "nproc" cpus '[ $(nproc) -ge 1 ] && echo cpus'
t "uname -s" Linux 'uname -s'
t "/proc/self is the reader" yes 'read p rest < /proc/self/stat; [ "$p" -gt 1 ] && echo yes'
t "/proc/meminfo" 1 'grep -c MemTotal /proc/meminfo'
t "ps lists the shell" yes 'ps | grep -q "sh" && echo yes'
t "/proc/uptime" yes 'read up idle < /proc/uptime; [ -n "$up" ] && echo yes'

# Text tools over pipes.
t "sort -n" "9,10,100," 'printf "10\n9\n100\n" | sort -n | tr "\n" ,'
t "sed" heLLo 'echo hello | sed s/l/L/g'
t "awk" b 'echo "a b c" | awk "{print \$2}"'
t "cut" c 'echo a:b:c | cut -d: -f3'
t "tr" ABC 'echo abc | tr a-c A-C'
t "uniq" 2 'printf "a\na\nb\n" | uniq | wc -l'
t "tail -n" "9,10," 'seq 1 10 | tail -n 2 | tr "\n" ,'
t "grep -v" 8 'seq 1 10 | grep -v 1 | wc -l'
t "xargs" "1 2 3" 'seq 1 3 | xargs echo'

echo "shell: $pass passed, $fail failed"
