package relay

import (
	"context"
	"strings"
	"testing"
)

// TestTx: a transaction opened step by step sends what Send would, in
// the order the caller gives it: MAIL, each Rcpt group in one write when
// pipelining, DATA and the body; Reset sends RSET, and the next Begin
// needs none; a refused DATA leaves the next Begin to reset first.
func TestTx(t *testing.T) {
	s, sc := dialScripted(t, []string{"PIPELINING", "8BITMIME", "SIZE 1000"},
		ex{c: "MAIL FROM:<a@x> SIZE=10 BODY=8BITMIME\r\n", s: ok},
		ex{c: "RCPT TO:<b1@y>\r\nRCPT TO:<b2@y>\r\n", one: true, s: ok + "550 5.1.1 no such user\r\n"},
		ex{c: "RCPT TO:<b3@y>\r\n", s: "452 4.2.2 full\r\n"},
		ex{c: "DATA\r\n", s: "354 go\r\n"},
		ex{c: "hi\r\n.\r\n", s: "250 2.0.0 queued as Q1\r\n"},
		ex{c: "MAIL FROM:<a@x>\r\n", s: ok},
		ex{c: "RCPT TO:<c@y>\r\n", s: ok},
		ex{c: "RSET\r\n", s: ok},
		ex{c: "MAIL FROM:<>\r\n", s: ok},
		ex{c: "RCPT TO:<d@y>\r\n", s: ok},
		ex{c: "DATA\r\n", s: "554 5.7.1 no\r\n"},
		ex{c: "RSET\r\n", s: ok},
		ex{c: "MAIL FROM:<a@x>\r\n", s: "451 4.3.0 later\r\n"},
		ex{c: "QUIT\r\n", s: "221 bye\r\n"},
	)
	ctx := context.Background()
	tx, err := s.Begin(ctx, &Envelope{From: "a@x", Size: 10, EightBit: true})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := tx.Rcpt(ctx, "b1@y", "b2@y")
	if err != nil || vs[0] != nil || !strings.Contains(vs[1].Error(), "550 5.1.1 no such user") {
		t.Fatalf("Rcpt: %v, %v", vs, err)
	}
	if vs, err = tx.Rcpt(ctx, "b3@y"); err != nil || !Temporary(vs[0]) {
		t.Fatalf("Rcpt b3: %v, %v", vs, err)
	}
	r, err := tx.Data(ctx, strings.NewReader("hi\n"))
	if err != nil || r.Code != 250 {
		t.Fatalf("Data: %v, %v", r, err)
	}

	tx, err = s.Begin(ctx, &Envelope{From: "a@x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Rcpt(ctx, "c@y"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Reset(ctx); err != nil {
		t.Fatal(err)
	}

	tx, err = s.Begin(ctx, &Envelope{From: ""})
	if err != nil {
		t.Fatal(err)
	}
	tx.Rcpt(ctx, "d@y")
	if _, err := tx.Data(ctx, strings.NewReader("x")); err == nil || Temporary(err) {
		t.Fatalf("Data refused: %v", err)
	}
	if _, err := s.Begin(ctx, &Envelope{From: "a@x"}); err == nil || !Temporary(err) || s.Broken() != nil {
		t.Fatalf("Begin after 451: %v, broken %v", err, s.Broken())
	}
	s.Quit()
	sc.wait()
}
