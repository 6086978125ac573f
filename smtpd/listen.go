package smtpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Listen listens on every one of addrs (TCP), or on none: after a
// failure the listeners already open are closed.
func Listen(addrs []string) ([]net.Listener, error) {
	var listeners []net.Listener
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %v", addr, err)
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

// ServeUntil serves every one of listeners until ctx ends (SIGTERM for
// relaymail -bd), then shuts down gracefully: no new session, and the
// sessions in progress get grace to finish (a message in DATA is
// answered) before they are cut off. It returns when every session is
// over; a listener that fails is logged.
func (s *Server) ServeUntil(ctx context.Context, listeners []net.Listener, grace time.Duration) {
	// Serve runs on its own context: ctx ending asks for a graceful
	// Shutdown, not for sessions to be cut off.
	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(serveCtx, l); err != nil && !errors.Is(err, ErrServerClosed) {
				s.logger().Warn("listener " + l.Addr().String() + ": " + err.Error())
			}
		}()
	}
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	s.Shutdown(shutdownCtx)
	stopServe()
	wg.Wait()
}
