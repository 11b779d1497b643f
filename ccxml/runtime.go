package ccxml

func (s *Session) start(d *Document) {
	s.end(ExitStatus{Reason: "error", Detail: "ccxml: execution not implemented yet"}, ErrUnsupported)
}

func (s *Session) dispatch(ev Event) {}
