package sendmail

import (
	"errors"
	"testing"
)

func TestQueueAdminOptions(t *testing.T) {
	tests := []struct {
		argv []string
		mode Mode
		id   string
		err  bool
	}{
		{[]string{"sendmail", "--requeue", "01ABC"}, ModeRequeue, "01ABC", false},
		{[]string{"sendmail", "--requeue=01ABC"}, ModeRequeue, "01ABC", false},
		{[]string{"sendmail", "--delete", "01XYZ"}, ModeDelete, "01XYZ", false},
		{[]string{"sendmail", "-C", "/x.toml", "--delete=01XYZ"}, ModeDelete, "01XYZ", false},
		{[]string{"sendmail", "--requeue"}, 0, "", true},
		{[]string{"sendmail", "--delete="}, 0, "", true},
		{[]string{"sendmail", "--requeuex", "1"}, 0, "", true},
	}
	for _, tt := range tests {
		o, err := ParseArgs(tt.argv)
		if tt.err {
			if !errors.Is(err, ErrUsage) {
				t.Errorf("%q: err = %v, want a usage error", tt.argv, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.argv, err)
			continue
		}
		if o.Mode != tt.mode || o.QueueID != tt.id {
			t.Errorf("%q: mode %v id %q, want %v %q", tt.argv, o.Mode, o.QueueID, tt.mode, tt.id)
		}
	}
}
