package activation

import (
	"os"
	"strings"
)

// ClientPrefix begins the name under which a stopping berth stores a
// listener's idle client connections in systemd's file descriptor store
// (ClientPrefix + the listener's name); systemd passes them to the next
// berth among the listening sockets, and these names tell them apart.
const ClientPrefix = "berth-client-"

// takeClient keeps f aside when it is a handed-over client connection.
func (s *Set) takeClient(f *os.File) bool {
	name, ok := strings.CutPrefix(f.Name(), ClientPrefix)
	if ok {
		s.clients[name] = append(s.clients[name], f)
	}
	return ok
}

// Clients takes the client connections handed over for listener; a
// second call returns none.
func (s *Set) Clients(listener string) []*os.File {
	files := s.clients[listener]
	delete(s.clients, listener)
	return files
}

// DropClients closes the handed-over connections no listener took (a
// listener renamed across the restart) and returns their listeners' names.
func (s *Set) DropClients() []string {
	var names []string
	for name, files := range s.clients {
		for _, f := range files {
			f.Close()
		}
		names = append(names, name)
	}
	clear(s.clients)
	return names
}
