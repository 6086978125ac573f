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
//	               then the message's header block as raw bytes. Replaced
//	               atomically (temporary file, fsync, rename) on update.
//	body/ID        the body exactly as relaymail read it; never rewritten.
//	               It is also the message's lock file (see Lock).
//	tmp/           where files are born; nothing else writes here.
//	failed/env/ID  messages given up (permanent failure, max_age), kept
//	failed/body/ID for the admin (Requeue, Delete).
//
// # Invariants
//
// A message is queued if and only if env/ID exists. Commit therefore
// writes the body first (born nameless with O_TMPFILE, fsynced, linked
// into body/, body/ fsynced) and the envelope last (written in tmp/,
// fsynced, renamed into env/, env/ fsynced). A crash at any point leaves
// either a complete queued message or nothing a runner would send: at
// worst an orphan body/ID without env/ID, or a stray file in tmp/, which
// Cleanup removes once they are an hour old and unlocked.
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
