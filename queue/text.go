package queue

// OneLine is the rule mailq prints a value by: each run of control
// characters (ESC, BEL, CR, a folded reply's CR LF) becomes one space.
// It is exported so that what a smarthost sent reaches the caller's
// stderr, -v and --check by the same rule as mailq: a terminal escape
// in a reply, which anyone on the path can send before STARTTLS, cannot
// repaint the administrator's screen.
func OneLine(s string) string { return oneLine(s) }
