package sendmail

// Usage is what --help prints: the options ParseArgs scans, grouped as
// relaymail(8) groups them.
const Usage = `usage: sendmail [options] [--] [recipient ...]    (relaymail)
       mailq          (sendmail -bp)
       newaliases     (sendmail -bi)

Reads a message on standard input and relays it through the smarthost
configured in /etc/relaymail.toml (or -C FILE, or $RELAYMAIL_CONFIG).

Sending (-bm, the default):
  -t              also take recipients from To:, Cc: and Bcc:
  -i, -oi, -O IgnoreDots
                  a line holding only "." does not end the message
  -f ADDR, -r ADDR
                  envelope sender ('' or '<>': the null sender)
  -F NAME         full name for an added From: header
  -B 7BIT|8BITMIME
                  the body type
  -N never|success,delay,failure
                  DSN NOTIFY (when the smarthost offers DSN)
  -R full|hdrs    DSN RET;  -V ENVID: DSN envelope id
  -odq, -odb      queue only: do not try now
  --dry-run       print the envelope and message as they would be sent
  --              every operand after it is a recipient

The SMTP personality:
  -bs             speak SMTP on stdin/stdout (Symfony Mailer, Laravel)
  -bd             listen on the configured addresses (loopback by default)

The queue:
  -bp, mailq      list the queue
  mailq --failed  list the messages kept in failed/
  -q              deliver what is queued now
  -q30m, -q1h     stay in the foreground and run the queue at that interval
                  (-bd -q30m: listen and run the queue)
  --requeue ID    (root) put a message from failed/ back in the queue
  --delete ID     (root) delete a message from the queue or failed/

Checking:
  --check         connect to the smarthost, show TLS, capabilities, AUTH; quit
  -bv             show how each recipient resolves; deliver nothing
  -v              print the SMTP dialogue on stderr (credentials redacted)
  -C FILE         use FILE as the configuration (drops privileges)
  --oauth2-login  (root) sign in to get the [smarthost.oauth2] refresh token
  --version, -d0.1
                  print the version (any -d: scripts probe the MTA so)
  --help          this text
  -bi, newaliases nothing to do: aliases are read at each run

Accepted and ignored (other sendmails' options): -oem -oep -oee -oeq -oew
-odi -om -o7 -o8 -oA..., any -oXV, -O X=V, -h N, -L TAG, -G, -U, -X FILE,
-Am, -Ac, -c, -m, -n, -s, -x, -e X, -p P; any other letter is ignored
too and logged. Not supported (exit 64): -bD -bt -bh -bH -bP -bl.

Exit status: 0 sent, 64 usage, 65 bad message, 67 recipient refused,
69 message refused, 75 try again later, 76 protocol error,
77 authentication refused, 78 configuration error.
`
