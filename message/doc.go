// Package message owns what one message is on its way from the caller to
// the wire: the SMTP envelope (Envelope), an id (NewID) and the content
// as a header block and a body readable from any offset (Message,
// Content).
//
// sendmail produces a Message from stdin or an SMTP DATA, queue stores
// its Envelope and content, relay sends the Envelope and reads the
// content, and delivery decides between them; none converts it on the
// way. The body is never copied: Content presents the header block and
// the body as one io.ReaderAt, read again for each host and for
// dead.letter, and the queue links a body it spilled into its own
// filesystem into place.
//
// It imports nothing of relaymail's, so every other package may use it.
package message
