// Package modes is what each mode of relaymail does once package main has
// parsed the command line into a sendmail.Options: deliver the message on
// stdin (-bm), show how recipients resolve (-bv), list the queue or
// failed/ (mailq, --failed), run the queue (-q, -q30m), requeue or delete
// a message (--requeue, --delete; root only), --check, --oauth2-login,
// --version, --help, and wire -bs and -bd to smtpgate and smtpd.
//
// An Invocation loads the config (giving up the setgid group first when
// the caller named it: SPEC §9) and the log, then runs the mode. Its
// errors wrap the class sentinels of sendmail, config and delivery, or
// ErrNotAllowed; main alone turns them into exit statuses. Text a server
// sent reaches the caller's terminal only through cleanLines.
package modes
