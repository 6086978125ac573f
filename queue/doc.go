// Package queue owns relaymail's durable spool: the files under the
// queue directory (SPEC §7), how a message gets into it so that it
// survives a crash or power loss from the moment Commit returns, how one
// runner at a time takes a message to deliver it, and how a message
// leaves it (delivered, given up, deleted by the admin).
//
// # Layout
//
// Under the queue directory (SPEC default /var/spool/relaymail):
//
//	env/ID         the envelope: one line of JSON (with a format version),
//	               then the message's header block as raw bytes (a plain
//	               envelope, version 1), or then the header block and the
//	               body (a combined file, version 2). Replaced atomically
//	               (temporary file, fsync, rename) by a plain envelope on
//	               update.
//	body/ID        the body exactly as relaymail read it, at body_offset
//	               (0, or where it starts in a combined file, which is
//	               body/ID and env/ID at first); never rewritten. It is
//	               also the message's lock file (see Lock).
//	tmp/           where files are born; nothing else writes here.
//	failed/env/ID  messages given up (permanent failure, max_age), kept
//	failed/body/ID for the admin (Requeue, Delete).
//
// # Invariants
//
// A message is queued if and only if env/ID exists. A message held in
// memory (up to 256 KiB of body: every small message) is committed in
// one combined file, with two fsyncs: it is born nameless with O_TMPFILE,
// written whole (envelope line, header, body) and fsynced, linked as
// body/ID and then as env/ID, and env/ is fsynced. body/ is not: env/ID
// alone holds the whole message, and should a power loss forget the
// body/ID link, Lock (and Walk, FailBodiless) link env/ID there again;
// Update and Fail fsync body/ before they replace a combined env/ID by
// a plain one. A spilled body takes four: it is fsynced, linked into
// body/, body/ is fsynced, and the envelope is written last (in tmp/,
// fsynced, renamed into env/, env/ fsynced). Either way a crash at any
// point leaves either a complete queued message or nothing a runner
// would send: at worst an orphan body/ID without env/ID, or a stray file
// in tmp/, which Cleanup removes once they are an hour old and unlocked.
// Both layouts are read, so messages queued by a version that wrote only
// plain envelopes are delivered after an upgrade; a plain envelope
// written by this version for a combined body carries body_offset, which
// the older version refuses rather than misreads.
//
// The envelope stored is message.Envelope, as sendmail made it and relay
// sends it, plus the retry state; Store takes a message's body wherever
// it is held and links a Body of this queue (one sendmail spilled into
// with NewBody) into place, without copying it.
//
// Leaving the queue goes the other way round: Remove deletes the
// envelope first, Fail renames the envelope into failed/ first, and
// Requeue brings the body back first and the envelope last. Cleanup
// finishes a move that a crash interrupted.
//
// # Locking
//
// A process works on a message while it holds flock(LOCK_EX|LOCK_NB) on
// body/ID: the body is never replaced, so its inode is stable, whereas
// env/ID is replaced by rename and a lock on it would be lost. flock
// locks belong to the open file description and die with the process,
// so a runner killed by SIGKILL frees its messages at once. The process
// that enqueues a message holds the same lock from NewBody until
// Body.Close, so neither a runner nor Cleanup touches a message whose
// enqueuer is still working on it.
//
// # Permissions
//
// relaymail runs as many users (setgid relaymail in production). Open
// creates missing directories 2770 with the group the process runs
// setgid to (whatever it is called), else with the group named
// relaymail when that exists, so that every file inherits the group
// through the setgid bit; else 0700; files are created 0660 in a group-accessible
// queue and 0600 otherwise, whatever the caller's umask.
package queue
