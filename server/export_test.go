package server

// PendWake puts a wake for device in s's wake queue without waking
// flushLoop: as if the node stopped in the moment between a message and
// its flush.
func PendWake(s *Server, device, chatID, msgID string) {
	s.wakes.mu.Lock()
	defer s.wakes.mu.Unlock()
	s.wakes.pending[device] = wake{device: device, chatID: chatID, msgID: msgID}
}
