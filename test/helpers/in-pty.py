"""Runs a command in a real pseudo-terminal and answers its prompts (a tiny expect).

usage: in-pty.py '<argv as JSON>' '<[[expect, send], ...] as JSON>' <timeout seconds>
Prints everything the command wrote to the terminal; exits with the command's exit code
(124 when the time limit ran out, after killing it).
"""
import json
import os
import pty
import select
import sys
import time

argv = json.loads(sys.argv[1])
script = json.loads(sys.argv[2])
deadline = time.time() + float(sys.argv[3])

pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

out = b""
seen = 0
step = 0
timed_out = False
while True:
    if time.time() > deadline:
        os.kill(pid, 9)
        timed_out = True
        break
    ready, _, _ = select.select([fd], [], [], 0.2)
    if fd in ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    while step < len(script):
        at = out.find(script[step][0].encode(), seen)
        if at < 0:
            break
        seen = at + len(script[step][0])
        os.write(fd, script[step][1].encode())
        step += 1

_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(124 if timed_out else os.waitstatus_to_exitcode(status) & 0xFF)
