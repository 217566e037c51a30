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
t "chown" "5:6" 'touch co; chown 5:6 co; stat -c "%u:%g" co'
t "chmod +x and test -x" x 'touch ex1; chmod +x ex1; [ -x ex1 ] && echo x'
t "mv a directory" a 'mkdir mvd; touch mvd/a; mv mvd mvd2; ls mvd2'
t "mv into a directory" m1 'mkdir into; touch m1; mv m1 into/; ls into'
t "cp -r" z 'mkdir -p cr/a; echo z > cr/a/f; cp -r cr cr2; cat cr2/a/f'
t "rm -f of nothing" 0 'rm -f nothere; echo $?'
t "ln -sf replaces a link" g 'ln -s f rs; ln -sf g rs; readlink rs'
t "readlink -f resolves" /tmp/sh/p1/p2 'readlink -f lp'
t "stat of a directory" directory 'stat -c %F p1'
t "stat of a symlink" "symbolic link" 'stat -c %F sl'
t "stat of a FIFO" fifo 'mkfifo ff2; stat -c %F ff2'
t "stat -L follows" 3 'stat -L -c %s sl'
t "find -type f" fd/x/y/z 'mkdir -p fd/x/y; touch fd/x/y/z; find fd -type f'
t "dd with a count" 300 'dd if=big of=part bs=100 count=3 2>dd.err; stat -c %s part'
t "tee" "tee-me,tee-me," 'echo tee-me | tee t1 > t2; cat t1 t2 | tr "\n" ,'
t "basename and dirname" "c /a/b" 'echo $(basename /a/b/c.txt .txt) $(dirname /a/b/c.txt)'
t "a 255-byte name" made 'n=$(printf "%0255d" 0); touch $n && echo made'
t "a 256-byte name is too long" toolong 'n=$(printf "%0256d" 0); touch $n 2>n.err || echo toolong'
t "a deep directory" /tmp/sh/a/b/c/d/e/f/g/h/i/j 'mkdir -p a/b/c/d/e/f/g/h/i/j; cd a/b/c/d/e/f/g/h/i/j; /bin/pwd -P'
t "cat of a directory fails" isdir 'cat p1 2>c.err || echo isdir'
t "root writes a read-only file" "x,y," 'echo x > ro; chmod 400 ro; echo y >> ro && cat ro | tr "\n" ,'
t "glob" "1.t 2.t" 'mkdir gl; touch gl/1.t gl/2.t gl/3.x; cd gl; echo *.t'

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
t "background pipeline into a file" 1000 '(seq 1 1000 | wc -l > bgout) & wait; cat bgout'
t "sort -r" "c,b,a," 'printf "a\nc\nb\n" | sort -r | tr "\n" ,'
t "sort -u" "a,b," 'printf "b\na\nb\n" | sort -u | tr "\n" ,'
t "head of a pipe" "1,2,3," 'seq 1 100 | head -n 3 | tr "\n" ,'
t "tr -d" heo 'echo hello | tr -d l'
t "grep -E" 2 'printf "ab\ncd\n" | grep -E "a|c" | wc -l'
t "sed -n" 3 'seq 1 5 | sed -n 3p'
t "awk sums a pipe" 5050 'seq 1 100 | awk "{s+=\$1} END {print s}"'

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
t "an ignored SIGINT" survived 'sh -c "trap \"\" INT; kill -INT \$\$; echo survived"'
t "kill -l" TERM 'kill -l 15'
t "a child's exit is quiet" ok 'sh -c "sleep 0 & wait; echo ok"'
t "subshell exit status" 3 '(exit 3); echo $?'
t "set -e stops a subshell" after '(set -e; false; echo not); echo after'
t "functions and arguments" "arg-one 3" 'f() { echo arg-$1; }; g() { echo $#; }; echo $(f one) $(g a b c)'
t "case" c 'x=foo.c; case $x in *.c) echo c;; *) echo other;; esac'
t "IFS splitting" 3 'v=a:b:c; IFS=:; set -- $v; echo $#'
t "arithmetic with variables" 35 'a=5; b=7; echo $((a*b))'
t "printf formats" "00042|ff|str" 'printf "%05d|%x|%s\n" 42 255 str'
t "expr" 42 'expr 6 \* 7'
t "test strings" ok '[ abc = abc ] && [ -n x ] && [ -z "" ] && echo ok'

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
t "umask reads back" 0077 'umask 077; umask'
t "ulimit -c is 0" 0 'ulimit -c'
t "ulimit -s is 8 MiB" 8192 'ulimit -s'
t "id -g" 0 'id -g'
t "HOME from init's environment" / 'echo $HOME'
t "TERM from init's environment" linux 'echo $TERM'
t "/proc/self/comm" cat 'cat /proc/self/comm'
t "/proc/self/status names the pid" yes 'grep -q "^Pid:" /proc/self/status && echo yes'

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
