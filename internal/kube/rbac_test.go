package kube_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/control/providertest"
	"github.com/aipress/aipress/internal/kube"
)

const rbacFile = "../../deploy/kubernetes/base/rbac.yaml"

// installRBAC creates the objects of deploy/kubernetes/base/rbac.yaml in
// ns, as kustomize would (namespace set), and returns a config that
// impersonates the control plane's service account.
func installRBAC(t *testing.T, ns string) *rest.Config {
	t.Helper()
	b, err := os.ReadFile(rbacFile)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	c := admin(t)
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) == 0 {
			continue
		}
		u.SetNamespace(ns)
		if u.GetKind() == "RoleBinding" {
			subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
			for _, s := range subjects {
				s.(map[string]any)["namespace"] = ns
			}
			_ = unstructured.SetNestedSlice(u.Object, subjects, "subjects")
		}
		if err := c.Create(t.Context(), &u); err != nil {
			t.Fatalf("create %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	rc := rest.CopyConfig(cfg)
	rc.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":aipress-server",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return rc
}

// The provider's Role is enough: as the service account (impersonated) it
// creates, watches, lists and deletes shards. And no more: it cannot list
// secrets, in its namespace or the cluster, nor touch another namespace,
// nor read pods or nodes.
func TestProviderRBAC(t *testing.T) {
	needEnv(t)
	ns := namespace(t)
	other := namespace(t)
	sa := installRBAC(t, ns)
	st := newStore(t)
	p := newProvider(t, sa, ns, st, nil)
	ctl := control.New(control.Config{Store: st, Provider: p, CollectInterval: time.Millisecond})

	sh, err := p.CreateShard(t.Context(), map[string]string{"region": "eu"})
	if err != nil {
		t.Fatalf("CreateShard as the service account: %v", err)
	}
	if err := p.Reconcile(t.Context(), sh.Name); err != nil {
		t.Fatalf("Reconcile as the service account: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	watchDone := make(chan error, 1)
	go func() { watchDone <- p.WatchShards(ctx, ctl.ReportShard) }()
	setReady(t, ns, kube.BaseName(sh.Name), true)
	setReady(t, ns, kube.BaseName(sh.Name)+"-db", true)
	waitFor(t, "the shard Ready, watched as the service account", ctl, func() bool {
		return shard(t, st, sh.Name).ProviderPhase == "Ready"
	})
	cancel()
	if err := <-watchDone; err != nil {
		t.Fatalf("WatchShards as the service account: %v", err)
	}
	if names, err := p.ListShards(t.Context()); err != nil || len(names) != 1 {
		t.Fatalf("ListShards as the service account: %v, %v", names, err)
	}
	// Everything, claims included.
	claim(t, ns, sh.Name, kube.BaseName(sh.Name))
	if err := p.DeleteShard(t.Context(), sh.Name); err != nil {
		t.Fatalf("DeleteShard as the service account: %v", err)
	}
	if got := objects(t, ns, sh.Name); len(got) != 0 {
		t.Errorf("objects left: %v", names(got))
	}

	c, err := client.New(sa, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	denied := []struct {
		what string
		do   func(ctx context.Context) error
	}{
		{"list secrets cluster-wide", func(ctx context.Context) error { return c.List(ctx, &corev1.SecretList{}) }},
		{"list secrets in its namespace", func(ctx context.Context) error { return c.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)) }},
		{"list pods", func(ctx context.Context) error { return c.List(ctx, &corev1.PodList{}, client.InNamespace(ns)) }},
		{"list nodes", func(ctx context.Context) error { return c.List(ctx, &corev1.NodeList{}) }},
		{"create a config map in another namespace", func(ctx context.Context) error {
			return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: other}})
		}},
		{"list stateful sets in another namespace", func(ctx context.Context) error {
			var l unstructured.UnstructuredList
			l.SetAPIVersion("apps/v1")
			l.SetKind("StatefulSetList")
			return c.List(ctx, &l, client.InNamespace(other))
		}},
		{"update its own role", func(ctx context.Context) error {
			var u unstructured.Unstructured
			u.SetAPIVersion("rbac.authorization.k8s.io/v1")
			u.SetKind("Role")
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "aipress-shard-provider"}, &u); err != nil {
				return err
			}
			return c.Update(ctx, &u)
		}},
		{"delete the namespace", func(ctx context.Context) error {
			return c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}},
	}
	for _, d := range denied {
		if err := d.do(t.Context()); !isForbidden(err) {
			t.Errorf("%s as the service account: err = %v, want Forbidden", d.what, err)
		}
	}
}

// The Kubernetes provider passes the shard providers' contract suite (the
// local provider does too: control/providertest), as the service account.
func TestContract(t *testing.T) {
	needEnv(t)
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		ns := namespace(t)
		st := newStore(t)
		p := newProvider(t, installRBAC(t, ns), ns, st, nil)
		return providertest.Harness{Provider: p, Store: st, Exists: func(t *testing.T, name string) bool {
			return len(objects(t, ns, name)) > 0
		}}
	})
}
