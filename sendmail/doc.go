// Package sendmail is relaymail's command-line personality: it owns
// everything between the caller and the envelope, and never dials.
//
// It scans sendmail's options the way Postfix does (options.go; their
// --help text is usage.go), reads
// the message from standard input as a stream (intake.go), keeps the
// header block as raw bytes so that every header it does not have to
// touch goes out byte for byte (header.go), parses addresses with a small
// RFC 5322 lexer of its own that accepts the bare names cron and atd
// write and is checked against net/mail in the tests (address.go),
// extracts recipients for -t (recipients.go), expands aliases
// (aliases.go), applies the header rewrites of SPEC §3 (rewrite.go), and
// puts it all together into a Message with its envelope (accept.go): a
// message.Message whose body is a Spool (spool.go), in memory or in a
// spill file the caller supplies.
//
// What happens to a Message next (relay, queue, dead.letter) is the
// business of package delivery; sendmail does not import the queue.
package sendmail
