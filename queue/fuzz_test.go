package queue

import (
	"bytes"
	"errors"
	"reflect"
	"relaymail/message"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []*Envelope{
		{ID: "A", Envelope: message.Envelope{To: []string{"b@x"}}},
		{ID: "B", Envelope: message.Envelope{From: "a@x", To: []string{"b@x", "c@y"}, EightBit: true, Notify: []string{"SUCCESS", "FAILURE"},
			Ret: "FULL", EnvID: "x+2By"}, Delivered: []string{"d@z"},
			Created: time.Date(2025, 1, 1, 0, 0, 0, 1, time.UTC), Attempts: 3,
			NextAttempt: time.Date(2025, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600)),
			LastError:   "smtp: 421 \"busy\" ünïcode", BodySize: 12345, Header: []byte("A: b\r\n\r\n")},
		{ID: "C", Envelope: message.Envelope{To: []string{"b@x"}}, Header: []byte("{\"v\":1}\n\n\x00\xff")},
	}
	for _, e := range tests {
		data, err := encodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEnvelope(data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", e.ID, err, data)
		}
		if !got.Created.Equal(e.Created) || !got.NextAttempt.Equal(e.NextAttempt) {
			t.Errorf("%s: times changed: %v %v", e.ID, got.Created, got.NextAttempt)
		}
		got.Created, got.NextAttempt = e.Created, e.NextAttempt
		if len(got.Header) == 0 && len(e.Header) == 0 {
			got.Header = e.Header
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
	bad := []string{
		"",
		"\n",
		"{}\n",
		"{\"v\":1,\"id\":\"A\",\"recipients\":[\"b\"],\"header_size\":0,\"extra\":1}\n",
		"{\"v\":1,\"id\":\"A\",\"recipients\":[\"b\"],\"header_size\":5}\nabc",
		"{\"v\":1,\"id\":\"../A\",\"recipients\":[\"b\"],\"header_size\":0}\n",
		"{\"v\":1,\"id\":\"A\",\"recipients\":[\"b\\r\\n\"],\"header_size\":0}\n",
		"{\"v\":1,\"id\":\"A\",\"recipients\":[\"b\"],\"header_size\":0,\"body_size\":-1}\n",
		"{\"v\":1,\"id\":\"A\",\"recipients\":[\"b\"],\"header_size\":0,\"created\":\"yesterday\"}\n",
		"{\"v\":\"1\"}\n",
		"[1]\n",
	}
	for _, s := range bad {
		if e, err := decodeEnvelope([]byte(s)); err == nil {
			t.Errorf("decodeEnvelope(%q) = %+v, want an error", s, e)
		}
	}
}

// FuzzDecodeEnvelope: the env decoder never panics, and what it accepts
// encodes back to something it decodes to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, e := range []*Envelope{
		{ID: "A", Envelope: message.Envelope{To: []string{"b@x"}}},
		{ID: "B", Envelope: message.Envelope{From: "a@x", To: []string{"b@x"}}, Attempts: 2, LastError: "e", Header: []byte("S: x\n\n")},
	} {
		data, _ := encodeEnvelope(e)
		f.Add(data)
	}
	combined := &Envelope{ID: "C", Envelope: message.Envelope{To: []string{"b@x"}}, Header: []byte("S: x\n\n")}
	data, _ := encodeCombined(combined, []byte("body\n"))
	f.Add(data)
	f.Add([]byte("{\"v\":1}\n"))
	f.Add([]byte("{\"v\":1,\"id\":\"A\",\"recipients\":[\"b\"],\"header_size\":3}\nabc"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEnvelope(data)
		if err != nil {
			return
		}
		again, err := encodeEnvelope(e)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		e2, err := decodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if !bytes.Equal(e.Header, e2.Header) || e.ID != e2.ID || !reflect.DeepEqual(e.To, e2.To) ||
			e.BodySize != e2.BodySize || e.BodyOffset != e2.BodyOffset || !e.Created.Equal(e2.Created) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", e, e2)
		}
	})
}

// decodeEnvelope parses an env file held whole in data, plain or
// combined, as readEnv does reading the file by parts (the line, then
// the header alone): the fuzz tests drive decodeLine through it, and
// TestWalkReadsLinesLikeEnvelopes checks readEnv against it. It never
// panics, whatever data holds.
func decodeEnvelope(data []byte) (*Envelope, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return nil, errors.New("no end to the envelope line")
	}
	e, headerSize, err := decodeLine(data[:nl], int64(len(data)-nl-1))
	if err != nil {
		return nil, err
	}
	e.Header = bytes.Clone(data[nl+1 : nl+1+headerSize])
	return e, nil
}
