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

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
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
	want := map[string]int{"Deployment": 2, "Service": 2, "ServiceAccount": 2, "Role": 1, "RoleBinding": 1, "PodDisruptionBudget": 1}
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
