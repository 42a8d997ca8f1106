package cluster

// Local returns this replica as a Member: its node name and advertised gRPC address.
func (m *Membership) Local() Member { return Member{Name: m.name, GRPCAddr: m.meta.grpc} }
