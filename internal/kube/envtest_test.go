package kube_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/kube"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// env is the package's kube-apiserver and etcd (nil: assets missing, and
// skip says why). Starting one takes seconds, so the tests share it, each
// in a namespace of its own.
var (
	env  *envtest.Environment
	cfg  *rest.Config
	skip string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		// What `make envtest-assets` builds, when run outside make.
		if home, err := os.UserHomeDir(); err == nil {
			matches, _ := filepath.Glob(filepath.Join(home, ".cache", "aipress", "envtest", "k8s-*"))
			if len(matches) > 0 {
				dir = matches[len(matches)-1]
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); dir == "" || err != nil {
		skip = "no envtest assets (kube-apiserver, etcd): run 'make envtest-assets' or set KUBEBUILDER_ASSETS"
		return m.Run()
	}
	env = &envtest.Environment{BinaryAssetsDirectory: dir}
	var err error
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "envtest stop: %v\n", err)
		}
	}()
	return m.Run()
}

func needEnv(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip(skip)
	}
}

func admin(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespace creates a namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return namespaceNamed(t, "t-"+hex.EncodeToString(b))
}

// namespaceNamed creates namespace name (once per kube-apiserver).
func namespaceNamed(t *testing.T, name string) string {
	t.Helper()
	if err := admin(t).Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "aipress.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var fixedTime = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func settings(ns string) kube.Settings {
	return kube.Settings{
		Namespace: ns, Image: "ghcr.io/aipress/aipress:test", ServerURL: "http://aipress-server:7070",
		TransferClaim: "aipress-transfers",
	}
}

func newProvider(t *testing.T, rc *rest.Config, ns string, st store.Store, ext *kube.ExternalMySQL) *kube.Provider {
	t.Helper()
	return newProviderWith(t, rc, ns, st, ext, false)
}

// newProviderWith is newProvider with or without in-cluster read replicas.
func newProviderWith(t *testing.T, rc *rest.Config, ns string, st store.Store, ext *kube.ExternalMySQL, replica bool) *kube.Provider {
	t.Helper()
	p, err := kube.New(kube.Config{REST: rc, Store: st, Settings: settings(ns), ExternalMySQL: ext, DBReplica: replica,
		Clock: func() time.Time { return fixedTime }, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kinds are every kind the provider makes, for listing.
var kinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "ConfigMap"},
	{Version: "v1", Kind: "Secret"},
	{Version: "v1", Kind: "Service"},
	{Version: "v1", Kind: "PersistentVolumeClaim"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"},
}

// objects lists the objects of shard in ns, as admin.
func objects(t *testing.T, ns, shard string) []unstructured.Unstructured {
	t.Helper()
	var out []unstructured.Unstructured
	for _, gvk := range kinds {
		var list unstructured.UnstructuredList
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := admin(t).List(t.Context(), &list, client.InNamespace(ns), client.MatchingLabels{kube.LabelShard: shard}); err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			if o.GetDeletionTimestamp() == nil {
				o.SetKind(gvk.Kind)
				out = append(out, o)
			}
		}
	}
	return out
}

func names(objs []unstructured.Unstructured) []string {
	var n []string
	for _, o := range objs {
		n = append(n, o.GetKind()+"/"+o.GetName())
	}
	sort.Strings(n)
	return n
}

// normalize strips what the server makes up (uids, versions, times,
// managed fields, status) and the Secrets' random values.
func normalize(ns string, objs []unstructured.Unstructured) []byte {
	var buf bytes.Buffer
	slices.SortFunc(objs, func(a, b unstructured.Unstructured) int {
		return strings.Compare(a.GetKind()+"/"+a.GetName(), b.GetKind()+"/"+b.GetName())
	})
	for _, o := range objs {
		o := o.DeepCopy()
		o.SetUID("")
		o.SetResourceVersion("")
		o.SetCreationTimestamp(metav1.Time{})
		o.SetManagedFields(nil)
		o.SetGeneration(0)
		o.SetNamespace("NAMESPACE")
		refs := o.GetOwnerReferences()
		for i := range refs {
			refs[i].UID = "UID"
		}
		o.SetOwnerReferences(refs)
		delete(o.Object, "status")
		unstructured.RemoveNestedField(o.Object, "metadata", "creationTimestamp")
		// The hashes cover the anchor's UID (owner references).
		if ann := o.GetAnnotations(); ann[kube.AnnotationHash] != "" {
			ann[kube.AnnotationHash] = "HASH"
			o.SetAnnotations(ann)
		}
		if ip, _, _ := unstructured.NestedString(o.Object, "spec", "clusterIP"); ip != "" && ip != "None" {
			_ = unstructured.SetNestedField(o.Object, "CLUSTER-IP", "spec", "clusterIP")
			_ = unstructured.SetNestedStringSlice(o.Object, []string{"CLUSTER-IP"}, "spec", "clusterIPs")
		}
		if o.GetKind() == "Secret" {
			data, _, _ := unstructured.NestedMap(o.Object, "data")
			for k, v := range data {
				data[k] = fmt.Sprintf("<%d base64 characters>", len(v.(string)))
			}
			_ = unstructured.SetNestedMap(o.Object, data, "data")
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			panic(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte(ns), []byte("NAMESPACE"))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/kube -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("objects differ from %s (go test ./internal/kube -update rewrites it); got:\n%s", path, got)
	}
}

// Creating a shard makes exactly the objects of the golden files: with a
// MariaDB of its own, and with an external MySQL (no MariaDB objects).
func TestCreateShardObjects(t *testing.T) {
	needEnv(t)
	tests := []struct {
		name     string
		ext      *kube.ExternalMySQL
		replica  bool
		file     string
		wantDB   bool
		wantObjs int
	}{
		{"own MariaDB", nil, false, "shard", true, 8},
		{"external MySQL", &kube.ExternalMySQL{Host: "10.1.2.3:3306", Secret: "cloudsql"}, false, "shard-external-mysql", false, 5},
		// A second StatefulSet and Service: the read replica.
		{"own MariaDB with a read replica", nil, true, "shard-db-replica", true, 10},
		// Given by address: the agent's flag only.
		{"external MySQL with a read replica", &kube.ExternalMySQL{Host: "10.1.2.3:3306", Secret: "cloudsql", Replica: "10.1.2.4:3306"},
			false, "shard-external-mysql-replica", false, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := namespaceNamed(t, "golden-"+tt.file)
			p := newProviderWith(t, cfg, ns, newStore(t), tt.ext, tt.replica)
			sh, err := p.CreateShard(t.Context(), map[string]string{"region": "eu"})
			if err != nil {
				t.Fatal(err)
			}
			if sh.Name != "k8s-1" {
				t.Errorf("first shard is %q, want k8s-1", sh.Name)
			}
			objs := objects(t, ns, sh.Name)
			if len(objs) != tt.wantObjs {
				t.Errorf("%d objects, want %d: %v", len(objs), tt.wantObjs, names(objs))
			}
			hasDB := false
			for _, o := range objs {
				if strings.HasSuffix(o.GetName(), "-db") {
					hasDB = true
				}
			}
			if hasDB != tt.wantDB {
				t.Errorf("MariaDB objects present = %v, want %v: %v", hasDB, tt.wantDB, names(objs))
			}
			golden(t, tt.file+".golden.yaml", normalize(ns, objs))
		})
	}
}

// writeCounter counts the requests that are not reads.
type writeCounter struct {
	n    atomic.Int64
	last atomic.Value // string: the last write, for the failure message
}

func (w *writeCounter) wrap(rc *rest.Config) *rest.Config {
	c := rest.CopyConfig(rc)
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.n.Add(1)
				w.last.Store(r.Method + " " + r.URL.Path)
			}
			return rt.RoundTrip(r)
		})
	}
	return c
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A second reconcile of an unchanged shard sends no write and changes no
// object's resourceVersion.
func TestSecondReconcileWritesNothing(t *testing.T) {
	needEnv(t)
	for _, replica := range []bool{false, true} {
		t.Run(fmt.Sprintf("replica=%v", replica), func(t *testing.T) { testSecondReconcileWritesNothing(t, replica) })
	}
}

func testSecondReconcileWritesNothing(t *testing.T, replica bool) {
	ns := namespace(t)
	var wc writeCounter
	p := newProviderWith(t, wc.wrap(cfg), ns, newStore(t), nil, replica)
	sh, err := p.CreateShard(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if wc.n.Load() == 0 {
		t.Fatal("the write counter saw no write while creating a shard")
	}
	before := map[string]string{}
	for _, o := range objects(t, ns, sh.Name) {
		before[o.GetKind()+"/"+o.GetName()] = o.GetResourceVersion()
	}
	wc.n.Store(0)
	for range 2 {
		if err := p.Reconcile(t.Context(), sh.Name); err != nil {
			t.Fatal(err)
		}
	}
	// The retry path of CreateShard reconciles too.
	if again, err := p.CreateShard(t.Context(), nil); err != nil || again.Name != sh.Name {
		t.Fatalf("retry: %v, %v", again.Name, err)
	}
	if n := wc.n.Load(); n != 0 {
		t.Errorf("reconciling an unchanged shard sent %d writes (last: %v)", n, wc.last.Load())
	}
	for _, o := range objects(t, ns, sh.Name) {
		k := o.GetKind() + "/" + o.GetName()
		if before[k] != o.GetResourceVersion() {
			t.Errorf("%s: resourceVersion %s → %s", k, before[k], o.GetResourceVersion())
		}
	}
}

// setReady sets a StatefulSet's status as the StatefulSet controller and
// kubelet would.
func setReady(t *testing.T, ns, name string, ready bool) {
	t.Helper()
	c := admin(t)
	var s appsv1.StatefulSet
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	n := int32(0)
	if ready {
		n = 1
	}
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: 1, CurrentReplicas: 1,
		UpdatedReplicas: 1, ReadyReplicas: n, AvailableReplicas: n}
	if err := c.Status().Update(t.Context(), &s); err != nil {
		t.Fatal(err)
	}
}

// newSite creates an unplaced site.
func newSite(t *testing.T, st store.Store, name string) {
	t.Helper()
	s := siteFor(name)
	if err := st.CreateSite(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ctl *control.Controller, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if err := ctl.Pass(t.Context()); err != nil {
			t.Logf("pass: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The leader's placement grows a Kubernetes shard; the shard is Pending
// until its pods are ready, then Ready and placeable; a shard whose pod is
// no longer ready is Degraded and gets no new sites.
func TestPodReadinessDrivesShardPhase(t *testing.T) {
	needEnv(t)
	ns := namespace(t)
	st := newStore(t)
	p := newProvider(t, cfg, ns, st, nil)
	ctl := control.New(control.Config{Store: st, Provider: p, HeartbeatTimeout: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	watchDone := make(chan error, 1)
	go func() { watchDone <- p.WatchShards(ctx, ctl.ReportShard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-watchDone; err != nil {
			t.Errorf("WatchShards: %v", err)
		}
	})

	newSite(t, st, "a.example.com")
	waitFor(t, "a placed", ctl, func() bool { return placedOn(t, st, "a.example.com") != "" })
	if got := placedOn(t, st, "a.example.com"); got != "k8s-1" {
		t.Fatalf("a placed on %q, want the new shard k8s-1", got)
	}
	sh := shard(t, st, "k8s-1")
	if sh.Phase != store.ShardPending || sh.ProviderPhase != store.ShardPending {
		t.Errorf("new shard: phase %s, provider phase %s (%s); want Pending", sh.Phase, sh.ProviderPhase, sh.ProviderReason)
	}

	setReady(t, ns, kube.BaseName("k8s-1"), true)
	time.Sleep(300 * time.Millisecond)
	if got := shard(t, st, "k8s-1"); got.ProviderPhase == store.ShardReady {
		t.Errorf("shard Ready with its database pod not ready: %+v", got)
	}
	setReady(t, ns, kube.BaseName("k8s-1")+"-db", true)
	waitFor(t, "k8s-1 Ready", ctl, func() bool { return shard(t, st, "k8s-1").Phase == store.ShardReady })

	newSite(t, st, "b.example.com")
	waitFor(t, "b placed", ctl, func() bool { return placedOn(t, st, "b.example.com") != "" })
	if got := placedOn(t, st, "b.example.com"); got != "k8s-1" {
		t.Errorf("b placed on %q, want the ready k8s-1", got)
	}

	setReady(t, ns, kube.BaseName("k8s-1"), false)
	waitFor(t, "k8s-1 Degraded", ctl, func() bool { return shard(t, st, "k8s-1").Phase == store.ShardDegraded })
	newSite(t, st, "c.example.com")
	waitFor(t, "c placed", ctl, func() bool { return placedOn(t, st, "c.example.com") != "" })
	if got := placedOn(t, st, "c.example.com"); got == "k8s-1" {
		t.Errorf("c placed on the degraded k8s-1")
	}

	setReady(t, ns, kube.BaseName("k8s-1"), true)
	waitFor(t, "k8s-1 Ready again", ctl, func() bool { return shard(t, st, "k8s-1").Phase == store.ShardReady })
}

func placedOn(t *testing.T, st store.Store, name string) string {
	t.Helper()
	s, err := st.GetSite(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.Status.Shard
}

func shard(t *testing.T, st store.Store, name string) *store.Shard {
	t.Helper()
	sh, err := st.GetShard(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// claim creates the volume claim the StatefulSet controller would make
// from the template (with the template's labels).
func claim(t *testing.T, ns, shardName, sts string) {
	t.Helper()
	var s appsv1.StatefulSet
	if err := admin(t).Get(t.Context(), client.ObjectKey{Namespace: ns, Name: sts}, &s); err != nil {
		t.Fatal(err)
	}
	lbl := s.Spec.VolumeClaimTemplates[0].Labels
	if lbl[kube.LabelShard] != shardName || lbl[kube.LabelManagedBy] != kube.ManagedBy {
		t.Fatalf("claim template labels %v", lbl)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data-" + sts + "-0", Namespace: ns, Labels: lbl},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
		},
	}
	if err := admin(t).Create(t.Context(), pvc); err != nil {
		t.Fatal(err)
	}
}

// Deleting a shard that holds a site is refused and keeps its volume
// claims; once empty, deleting removes every object, the claims included
// (with a read replica: its StatefulSet, Service and claim too).
func TestDeleteShard(t *testing.T) {
	needEnv(t)
	for _, replica := range []bool{false, true} {
		t.Run(fmt.Sprintf("replica=%v", replica), func(t *testing.T) { testDeleteShard(t, replica) })
	}
}

func testDeleteShard(t *testing.T, replica bool) {
	ns := namespace(t)
	st := newStore(t)
	p := newProviderWith(t, cfg, ns, st, nil, replica)
	sh, err := p.CreateShard(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	claim(t, ns, sh.Name, kube.BaseName(sh.Name))
	claim(t, ns, sh.Name, kube.DBName(sh.Name))
	if replica {
		claim(t, ns, sh.Name, kube.DBReplicaName(sh.Name))
	}
	all := names(objects(t, ns, sh.Name))
	if n := strings.Count(strings.Join(all, " "), kube.DBReplicaName(sh.Name)); replica && n != 3 || !replica && n != 0 {
		t.Fatalf("objects %v: %d of the read replica", all, n)
	}

	newSite(t, st, "a.example.com")
	place(t, st, "a.example.com", sh.Name)
	if err := p.DeleteShard(t.Context(), sh.Name); !errors.Is(err, control.ErrShardNotEmpty) {
		t.Fatalf("DeleteShard of a shard holding a site: %v, want ErrShardNotEmpty", err)
	}
	if got := names(objects(t, ns, sh.Name)); !slices.Equal(got, all) {
		t.Errorf("a refused deletion changed the objects: %v, was %v", got, all)
	}

	if err := st.DeleteSite(t.Context(), "a.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteShard(t.Context(), sh.Name); err != nil {
		t.Fatal(err)
	}
	if got := objects(t, ns, sh.Name); len(got) != 0 {
		t.Errorf("objects left after deleting an empty shard: %v", names(got))
	}
	if _, err := st.GetShard(t.Context(), sh.Name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store record after DeleteShard: %v", err)
	}
}

// Deleting a shard's record (aipress shard delete) makes the leader delete
// its objects.
func TestLeaderCollectsDeletedShards(t *testing.T) {
	needEnv(t)
	ns := namespace(t)
	st := newStore(t)
	p := newProvider(t, cfg, ns, st, nil)
	ctl := control.New(control.Config{Store: st, Provider: p, CollectInterval: time.Millisecond})
	keep, err := p.CreateShard(t.Context(), map[string]string{"tier": "a"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := p.CreateShard(t.Context(), map[string]string{"tier": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteShard(t.Context(), gone.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted shard's objects gone", ctl, func() bool { return len(objects(t, ns, gone.Name)) == 0 })
	if len(objects(t, ns, keep.Name)) == 0 {
		t.Error("the objects of a shard that still has its record were deleted")
	}
}

func place(t *testing.T, st store.Store, site, shard string) {
	t.Helper()
	if _, err := st.UpdateSite(t.Context(), site, placeFn(shard)); err != nil {
		t.Fatal(err)
	}
}

func isForbidden(err error) bool { return apierrors.IsForbidden(err) }

// A shard with a read replica is Pending until the replica's pod is ready
// too; once Ready, a replica that stops being ready leaves it Ready (the
// pooler falls back to the primary) and says so. Turning replicas off
// deletes the replica's objects, and leaves the rest alone.
func TestReplicaDrivesShardPhase(t *testing.T) {
	needEnv(t)
	ns := namespace(t)
	st := newStore(t)
	p := newProviderWith(t, cfg, ns, st, nil, true)
	ctl := control.New(control.Config{Store: st, Provider: p, HeartbeatTimeout: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	watchDone := make(chan error, 1)
	go func() { watchDone <- p.WatchShards(ctx, ctl.ReportShard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-watchDone; err != nil {
			t.Errorf("WatchShards: %v", err)
		}
	})
	sh, err := p.CreateShard(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	setReady(t, ns, kube.BaseName(sh.Name), true)
	setReady(t, ns, kube.DBName(sh.Name), true)
	waitFor(t, "the replica named as what the shard waits for", ctl, func() bool {
		return strings.Contains(shard(t, st, sh.Name).ProviderReason, "read replica pod not ready")
	})
	if got := shard(t, st, sh.Name); got.ProviderPhase != store.ShardPending {
		t.Errorf("shard with its replica not ready: %s (%s), want Pending", got.ProviderPhase, got.ProviderReason)
	}
	setReady(t, ns, kube.DBReplicaName(sh.Name), true)
	waitFor(t, "Ready", ctl, func() bool { return shard(t, st, sh.Name).ProviderPhase == store.ShardReady })

	setReady(t, ns, kube.DBReplicaName(sh.Name), false)
	waitFor(t, "the replica's trouble reported", ctl, func() bool {
		return strings.Contains(shard(t, st, sh.Name).ProviderReason, "reads go to the primary")
	})
	if got := shard(t, st, sh.Name); got.ProviderPhase != store.ShardReady {
		t.Errorf("Ready shard whose replica is not ready: %s (%s), want Ready", got.ProviderPhase, got.ProviderReason)
	}

	// Replicas turned off: the replica's objects go (its claim too, a
	// copy), the others stay as they are.
	claim(t, ns, sh.Name, kube.DBReplicaName(sh.Name))
	claim(t, ns, sh.Name, kube.DBName(sh.Name))
	before := map[string]string{}
	for _, o := range objects(t, ns, sh.Name) {
		before[o.GetKind()+"/"+o.GetName()] = o.GetResourceVersion()
	}
	off := newProviderWith(t, cfg, ns, st, nil, false)
	if err := off.Reconcile(t.Context(), sh.Name); err != nil {
		t.Fatal(err)
	}
	after := objects(t, ns, sh.Name)
	for _, o := range after {
		k := o.GetKind() + "/" + o.GetName()
		if strings.Contains(o.GetName(), "db-replica") {
			t.Errorf("%s left after turning replicas off", k)
		}
	}
	for _, k := range []string{"PersistentVolumeClaim/data-" + kube.DBName(sh.Name) + "-0", "StatefulSet/" + kube.DBName(sh.Name), "Service/" + kube.DBName(sh.Name)} {
		found := false
		for _, o := range after {
			if o.GetKind()+"/"+o.GetName() == k {
				found = true
				if o.GetResourceVersion() != before[k] {
					t.Errorf("%s changed when the replica went", k)
				}
			}
		}
		if !found {
			t.Errorf("%s deleted with the replica", k)
		}
	}
	// The agent's pod is new (its flags changed): ready again.
	setReady(t, ns, kube.BaseName(sh.Name), true)
	waitFor(t, "Ready without a replica", ctl, func() bool {
		got := shard(t, st, sh.Name)
		return got.ProviderPhase == store.ShardReady && got.ProviderReason == "pods ready"
	})
	var wc writeCounter
	again := newProviderWith(t, wc.wrap(cfg), ns, st, nil, false)
	if err := again.Reconcile(t.Context(), sh.Name); err != nil {
		t.Fatal(err)
	}
	if n := wc.n.Load(); n != 0 {
		t.Errorf("reconciling a shard without a replica, again, sent %d writes (last %v)", n, wc.last.Load())
	}
}
