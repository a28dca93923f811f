package kube_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/kube"
)

const baseDir = "../../deploy/kubernetes/base"

// The kustomize base lists every manifest in its directory, each document
// has a kind, an apiVersion and a name, nothing is cluster-scoped RBAC, and
// (when kubectl is installed) kubectl kustomize builds it.
func TestDeployBase(t *testing.T) {
	var kust struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(baseDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &kust); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(baseDir, "*.yaml"))
	kinds := map[string]int{}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "kustomization.yaml" {
			continue
		}
		if !slices.Contains(kust.Resources, name) {
			t.Errorf("%s is not listed in kustomization.yaml", name)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var u unstructured.Unstructured
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
				t.Errorf("%s: a document without kind, apiVersion or name: %v", name, u.Object)
			}
			kinds[u.GetKind()]++
		}
	}
	want := map[string]int{"Deployment": 2, "Service": 2, "ServiceAccount": 2, "Role": 1, "RoleBinding": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 5}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s objects, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	for _, k := range []string{"ClusterRole", "ClusterRoleBinding"} {
		if kinds[k] > 0 {
			t.Errorf("the base has a %s: the provider needs only its namespace", k)
		}
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl not installed: kustomize build not checked")
		return
	}
	if out, err := exec.Command(kubectl, "kustomize", baseDir).CombinedOutput(); err != nil {
		t.Errorf("kubectl kustomize: %v\n%s", err, out)
	}
}

// The NetworkPolicies of the base select the pods the provider makes: the
// shard agents' pods admit the edges' and the control plane's pods (labels
// of edge.yaml's and server.yaml's templates) on the gateway's port, a shard's MariaDB admits the agents and the read
// replicas (replication), and a read replica admits the agents only.
func TestDeployNetworkPolicies(t *testing.T) {
	pols := basePolicies(t)
	podLabels := shardPodLabels(t)
	eb, err := os.ReadFile(filepath.Join(baseDir, "edge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var edge unstructured.Unstructured
	if err := yaml.Unmarshal(bytes.SplitN(eb, []byte("\n---"), 2)[0], &edge.Object); err != nil {
		t.Fatal(err)
	}
	edgeLabels, _, _ := unstructured.NestedStringMap(edge.Object, "spec", "template", "metadata", "labels")
	// The control plane reads the sites' PHP logs through the gateway.
	sb, err := os.ReadFile(filepath.Join(baseDir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var server unstructured.Unstructured
	if err := yaml.Unmarshal(bytes.SplitN(sb, []byte("\n---"), 2)[0], &server.Object); err != nil {
		t.Fatal(err)
	}
	serverLabels, _, _ := unstructured.NestedStringMap(server.Object, "spec", "template", "metadata", "labels")
	matches := func(sel metav1.LabelSelector, l labels.Set) bool {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		return err == nil && !s.Empty() && s.Matches(l)
	}
	shardPol, dbPol := pols["aipress-shard"], pols["aipress-shard-db"]
	if !matches(shardPol.Spec.PodSelector, podLabels[kube.ComponentShard]) || matches(shardPol.Spec.PodSelector, podLabels[kube.ComponentShardDB]) {
		t.Errorf("aipress-shard selects %v", shardPol.Spec.PodSelector)
	}
	if !matches(dbPol.Spec.PodSelector, podLabels[kube.ComponentShardDB]) || matches(dbPol.Spec.PodSelector, podLabels[kube.ComponentShard]) {
		t.Errorf("aipress-shard-db selects %v", dbPol.Spec.PodSelector)
	}
	in := shardPol.Spec.Ingress
	if len(in) != 2 || len(in[0].From) != 2 || !matches(*in[0].From[0].PodSelector, edgeLabels) || matches(*in[0].From[0].PodSelector, podLabels[kube.ComponentShard]) ||
		!matches(*in[0].From[1].PodSelector, serverLabels) || matches(*in[0].From[1].PodSelector, podLabels[kube.ComponentShard]) {
		t.Fatalf("aipress-shard ingress: %+v", in)
	}
	if p := in[0].Ports; len(p) != 1 || p[0].Port.IntValue() != kube.PortGateway {
		t.Errorf("edge ports: %+v", p)
	}
	if len(in[1].From) != 0 || len(in[1].Ports) != 1 || in[1].Ports[0].Port.IntValue() != kube.PortHealth {
		t.Errorf("health rule: %+v", in[1])
	}
	// admits reports whether some rule of pol admits a pod with labels l
	// on port.
	admits := func(pol networkingv1.NetworkPolicy, l labels.Set, port int) bool {
		for _, r := range pol.Spec.Ingress {
			portOK := false
			for _, p := range r.Ports {
				portOK = portOK || p.Port.IntValue() == port
			}
			for _, f := range r.From {
				if portOK && f.PodSelector != nil && matches(*f.PodSelector, l) {
					return true
				}
			}
		}
		return false
	}
	replicaPol := pols["aipress-shard-db-replica"]
	if !matches(replicaPol.Spec.PodSelector, podLabels[kube.ComponentShardDBReplica]) ||
		matches(replicaPol.Spec.PodSelector, podLabels[kube.ComponentShardDB]) || matches(dbPol.Spec.PodSelector, podLabels[kube.ComponentShardDBReplica]) {
		t.Errorf("aipress-shard-db-replica selects %v; aipress-shard-db %v", replicaPol.Spec.PodSelector, dbPol.Spec.PodSelector)
	}
	for _, tt := range []struct {
		pol  string
		from string
		l    labels.Set
		ok   bool
	}{
		{"aipress-shard-db", "agent", podLabels[kube.ComponentShard], true},
		{"aipress-shard-db", "read replica", podLabels[kube.ComponentShardDBReplica], true},
		{"aipress-shard-db", "edge", edgeLabels, false},
		{"aipress-shard-db-replica", "agent", podLabels[kube.ComponentShard], true},
		{"aipress-shard-db-replica", "primary", podLabels[kube.ComponentShardDB], false},
		{"aipress-shard-db-replica", "edge", edgeLabels, false},
	} {
		if got := admits(pols[tt.pol], tt.l, kube.PortMySQL); got != tt.ok {
			t.Errorf("%s admits the %s on 3306: %v, want %v", tt.pol, tt.from, got, tt.ok)
		}
		if admits(pols[tt.pol], tt.l, kube.PortGateway) {
			t.Errorf("%s admits the %s on another port", tt.pol, tt.from)
		}
	}
}
