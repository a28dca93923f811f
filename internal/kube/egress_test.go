package kube_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/kube"
)

// shardPodLabels are the pod template labels of a shard's StatefulSets
// (agent, MariaDB and its read replica) by component.
func shardPodLabels(t *testing.T) map[string]labels.Set {
	t.Helper()
	objs, err := kube.Objects(kube.Settings{Namespace: "ns", Image: "img", ServerURL: "http://s"}, kube.ShardSpec{Name: "k8s-1", Capacity: 50, DBReplica: true}, kube.Owner{Name: "a", UID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]labels.Set{}
	for _, u := range objs {
		if u.GetKind() == "StatefulSet" {
			m, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
			pods[m[kube.LabelComponent]] = m
		}
	}
	return pods
}

func basePolicies(t *testing.T) map[string]networkingv1.NetworkPolicy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(baseDir, "networkpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pols := map[string]networkingv1.NetworkPolicy{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return pols
		}
		if err != nil {
			t.Fatal(err)
		}
		var p networkingv1.NetworkPolicy
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			t.Fatal(err)
		}
		pols[p.Name] = p
	}
}

func templateLabels(t *testing.T, file string) labels.Set {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(baseDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var u unstructured.Unstructured
	if err := yaml.Unmarshal(bytes.SplitN(b, []byte("\n---"), 2)[0], &u.Object); err != nil {
		t.Fatal(err)
	}
	m, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
	return m
}

// dest is a connection a pod attempts: to an address, which is a pod with
// labels or (nil labels) something outside the namespace's pods.
type dest struct {
	name   string
	addr   string
	labels labels.Set
	port   int32
	proto  corev1.Protocol
	ok     bool
}

// egressAllows evaluates a policy's egress rules as NetworkPolicy does
// for one destination: some rule's ports and peers both admit it.
func egressAllows(p networkingv1.NetworkPolicy, d dest) bool {
	addr := netip.MustParseAddr(d.addr)
	for _, r := range p.Spec.Egress {
		portOK := len(r.Ports) == 0
		for _, pp := range r.Ports {
			proto := corev1.ProtocolTCP
			if pp.Protocol != nil {
				proto = *pp.Protocol
			}
			if proto != d.proto {
				continue
			}
			if pp.Port == nil {
				portOK = true
				continue
			}
			first, last := pp.Port.IntVal, pp.Port.IntVal
			if pp.EndPort != nil {
				last = *pp.EndPort
			}
			if d.port >= first && d.port <= last {
				portOK = true
			}
		}
		peerOK := len(r.To) == 0
		for _, peer := range r.To {
			if peer.PodSelector != nil && d.labels != nil {
				if s, err := metav1.LabelSelectorAsSelector(peer.PodSelector); err == nil && s.Matches(d.labels) {
					peerOK = true
				}
			}
			if b := peer.IPBlock; b != nil {
				in := netip.MustParsePrefix(b.CIDR).Contains(addr)
				for _, e := range b.Except {
					if netip.MustParsePrefix(e).Contains(addr) {
						in = false
					}
				}
				if in {
					peerOK = true
				}
			}
		}
		if portOK && peerOK {
			return true
		}
	}
	return false
}

// The egress policies let shard pods reach DNS, the API, a database and
// the internet, and edges DNS, the API, the shards' ports and HTTP(S) on
// the internet — neither reaches the metadata address, other pods' ports
// (the edge's metrics) or private networks; each selects the pods it is
// meant for.
func TestDeployEgressPolicies(t *testing.T) {
	pols := basePolicies(t)
	pod := shardPodLabels(t)
	pod["edge"], pod["server"] = templateLabels(t, "edge.yaml"), templateLabels(t, "server.yaml")
	selects := func(p networkingv1.NetworkPolicy, l labels.Set) bool {
		s, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		return err == nil && !s.Empty() && s.Matches(l)
	}
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	tests := []struct {
		policy  string
		selects []string // components it applies to
		dests   []dest
	}{
		{"aipress-shard-egress", []string{kube.ComponentShard}, []dest{
			{"DNS", "10.96.0.10", nil, 53, udp, true},
			{"DNS over TCP", "10.96.0.10", nil, 53, tcp, true},
			{"NodeLocal DNS", "169.254.20.10", nil, 53, udp, true},
			{"API", "10.4.0.7", pod["server"], 7070, tcp, true},
			{"own MariaDB", "10.4.0.8", pod[kube.ComponentShardDB], 3306, tcp, true},
			{"Cloud SQL private IP", "10.20.0.3", nil, 3306, tcp, true},
			{"internet", "8.8.8.8", nil, 443, tcp, true},
			{"internet IPv6", "2001:4860::8888", nil, 443, tcp, true},
			{"metadata", "169.254.169.254", nil, 80, tcp, false},
			{"AWS IPv6 metadata", "fd00:ec2::254", nil, 80, tcp, false},
			{"edge metrics", "10.4.0.9", pod["edge"], 9090, tcp, false},
			{"another shard's gateway", "10.4.0.11", pod[kube.ComponentShard], kube.PortGateway, tcp, false},
			{"API port off the server", "10.4.0.9", pod["edge"], 7070, tcp, false},
			{"private network", "192.168.1.1", nil, 22, tcp, false},
		}},
		{"aipress-edge-egress", []string{"edge"}, []dest{
			{"DNS", "10.96.0.10", nil, 53, udp, true},
			{"API", "10.4.0.7", pod["server"], 7070, tcp, true},
			{"gateway", "10.4.0.11", pod[kube.ComponentShard], kube.PortGateway, tcp, true},
			{"a former TCP pool port", "10.4.0.11", pod[kube.ComponentShard], 9150, tcp, false},
			{"ACME (172.65/16 is outside 172.16/12)", "172.65.32.248", nil, 443, tcp, true},
			{"ACME public", "34.120.0.1", nil, 443, tcp, true},
			{"OCSP", "34.120.0.1", nil, 80, tcp, true},
			{"ssh out", "34.120.0.1", nil, 22, tcp, false},
			{"metadata", "169.254.169.254", nil, 80, tcp, false},
			{"shard health", "10.4.0.11", pod[kube.ComponentShard], kube.PortHealth, tcp, false},
			{"shard MariaDB", "10.4.0.8", pod[kube.ComponentShardDB], 3306, tcp, false},
		}},
	}
	for _, tt := range tests {
		p, ok := pols[tt.policy]
		if !ok {
			t.Errorf("no NetworkPolicy %s", tt.policy)
			continue
		}
		if !slices.Equal(p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) {
			t.Errorf("%s: policy types %v", tt.policy, p.Spec.PolicyTypes)
		}
		for comp, l := range pod {
			if want := slices.Contains(tt.selects, comp); selects(p, l) != want {
				t.Errorf("%s selects %s pods: %v, want %v", tt.policy, comp, !want, want)
			}
		}
		for _, d := range tt.dests {
			if got := egressAllows(p, d); got != d.ok {
				t.Errorf("%s: %s (%s:%d/%s) allowed %v, want %v", tt.policy, d.name, d.addr, d.port, d.proto, got, d.ok)
			}
		}
	}
}

// The base's NetworkPolicies are valid for a real kube-apiserver.
func TestDeployPoliciesValid(t *testing.T) {
	needEnv(t)
	ns := namespace(t)
	c := admin(t)
	for name, p := range basePolicies(t) {
		p.Namespace = ns
		if err := c.Create(t.Context(), &p); err != nil {
			t.Errorf("NetworkPolicy %s: %v", name, err)
		}
	}
}
