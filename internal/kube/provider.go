package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/placement"
	"github.com/aipress/aipress/internal/store"
)

// ProviderKubernetes is the store.Shard.Provider value of the shards this
// provider makes.
const ProviderKubernetes = "kubernetes"

// Config configures a Provider. REST, Store and Settings (Namespace, Image,
// ServerURL) are required.
type Config struct {
	REST     *rest.Config
	Store    store.Store
	Settings Settings
	// Prefix of new shards' names; default "k8s-".
	Prefix string
	// Capacity of new shards (0: placement.DefaultCapacity).
	Capacity int
	// Labels every new shard gets besides the placement constraints.
	Labels map[string]string
	// ExternalMySQL, if set, is given to new shards instead of a MariaDB
	// of their own.
	ExternalMySQL *ExternalMySQL
	// DBReplica gives every shard with a MariaDB of its own a read
	// replica (ShardSpec.DBReplica); turned off, the replicas are deleted
	// (they hold only a copy).
	DBReplica bool
	Logger    *slog.Logger
	Clock     func() time.Time
	// Resync is how often WatchShards re-applies every shard's objects
	// (repairing drift; unchanged objects cost one read each and no
	// write). Default 10 minutes.
	Resync time.Duration
}

// Provider runs shards on Kubernetes. It implements control.ShardProvider,
// control.ShardWatcher and control.ShardLister.
type Provider struct {
	cfg    Config
	c      client.Client
	scheme *runtime.Scheme
	log    *slog.Logger

	mu sync.Mutex // one creation, reconcile or deletion at a time
}

var (
	_ control.ShardProvider = (*Provider)(nil)
	_ control.ShardWatcher  = (*Provider)(nil)
	_ control.ShardLister   = (*Provider)(nil)
)

// New returns a Provider.
func New(cfg Config) (*Provider, error) {
	switch {
	case cfg.REST == nil:
		return nil, errors.New("kubernetes provider: no REST config")
	case cfg.Store == nil:
		return nil, errors.New("kubernetes provider: no store")
	case cfg.Settings.Namespace == "":
		return nil, errors.New("kubernetes provider: no namespace")
	case cfg.Settings.Image == "":
		return nil, errors.New("kubernetes provider: no shard image")
	case cfg.Settings.ServerURL == "":
		return nil, errors.New("kubernetes provider: no control-plane URL for the shards")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "k8s-"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Minute
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = placement.DefaultCapacity
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg.REST, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("kubernetes provider: client: %w", err)
	}
	return &Provider{cfg: cfg, c: c, scheme: scheme, log: cfg.Logger}, nil
}

func (p *Provider) ns() string { return p.cfg.Settings.Namespace }

// Kind implements control.ShardProvider.
func (p *Provider) Kind() string { return ProviderKubernetes }

// CreateShard implements placement.Provider: it records a new shard
// (Pending) in the store and applies its objects. A retry with the same
// labels reuses a shard that never became ready and holds no site.
func (p *Provider) CreateShard(ctx context.Context, lbls map[string]string) (placement.Shard, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := maps.Clone(p.cfg.Labels)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, lbls)
	shards, err := p.cfg.Store.ListShards(ctx)
	if err != nil {
		return placement.Shard{}, fmt.Errorf("kubernetes provider: %w", err)
	}
	next := 1
	var rec *store.Shard
	for i, sh := range shards {
		if n, ok := strings.CutPrefix(sh.Name, p.cfg.Prefix); ok {
			if v, err := strconv.Atoi(n); err == nil && v >= next {
				next = v + 1
			}
		}
		if rec == nil && sh.Provider == ProviderKubernetes && sh.Phase == store.ShardPending &&
			sh.LastHeartbeat == nil && sh.ProviderPhase != store.ShardReady && maps.Equal(sh.Labels, all) &&
			control.CheckShardEmpty(ctx, p.cfg.Store, sh.Name) == nil {
			rec = &shards[i]
		}
	}
	if rec == nil {
		rec = &store.Shard{
			Name: p.cfg.Prefix + strconv.Itoa(next), Capacity: p.cfg.Capacity, Labels: all,
			Provider: ProviderKubernetes, Phase: store.ShardPending, ProviderPhase: store.ShardPending,
			ProviderReason: "objects created", CreatedAt: p.cfg.Clock().UTC(),
		}
		if err := ValidShardName(rec.Name); err != nil {
			return placement.Shard{}, fmt.Errorf("kubernetes provider: %w", err)
		}
		if err := p.cfg.Store.CreateShard(ctx, rec); err != nil {
			return placement.Shard{}, fmt.Errorf("kubernetes provider: create shard %s: %w", rec.Name, err)
		}
	}
	if err := p.reconcileLocked(ctx, *rec); err != nil {
		return placement.Shard{}, fmt.Errorf("kubernetes provider: shard %s: %w", rec.Name, err)
	}
	p.log.Info("created shard", "shard", rec.Name, "namespace", p.ns(), "labels", rec.Labels)
	return placement.Shard{Name: rec.Name, Labels: rec.Labels, Capacity: rec.Capacity, Starting: true}, nil
}

// Reconcile applies the objects of shard name (its store record must
// exist). Objects already as wanted are only read.
func (p *Provider) Reconcile(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, err := p.cfg.Store.GetShard(ctx, name)
	if err != nil {
		return fmt.Errorf("kubernetes provider: %w", err)
	}
	if err := p.reconcileLocked(ctx, *rec); err != nil {
		return fmt.Errorf("kubernetes provider: shard %s: %w", name, err)
	}
	return nil
}

func (p *Provider) reconcileLocked(ctx context.Context, rec store.Shard) error {
	if err := ValidShardName(rec.Name); err != nil {
		return err
	}
	spec := ShardSpec{Name: rec.Name, Capacity: rec.Capacity, Labels: rec.Labels, ExternalMySQL: p.cfg.ExternalMySQL}
	if spec.ExternalMySQL != nil {
		x := *spec.ExternalMySQL
		spec.ExternalMySQL = &x
	}
	if spec.Capacity <= 0 {
		spec.Capacity = placement.DefaultCapacity
	}
	// A shard keeps the database it was made with.
	cm := &corev1.ConfigMap{}
	err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns(), Name: BaseName(rec.Name)}, cm)
	switch {
	case err == nil:
		var old ShardSpec
		if json.Unmarshal([]byte(cm.Data["shard.json"]), &old) == nil {
			// The external server's read replica follows the
			// configuration while the server is the same.
			if old.ExternalMySQL != nil && spec.ExternalMySQL != nil && old.ExternalMySQL.Host == spec.ExternalMySQL.Host {
				old.ExternalMySQL.Replica = spec.ExternalMySQL.Replica
			}
			spec.ExternalMySQL = old.ExternalMySQL
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get anchor: %w", err)
	}
	// The in-cluster replica is a copy the agent makes: it may come and go
	// with the configuration.
	spec.DBReplica = p.cfg.DBReplica && spec.ExternalMySQL == nil
	if err := CheckSpec(p.cfg.Settings, spec); err != nil {
		return err
	}
	anchor, err := Anchor(p.ns(), spec)
	if err != nil {
		return err
	}
	au, err := toApply(anchor)
	if err != nil {
		return err
	}
	am, err := p.apply(ctx, au)
	if err != nil {
		return err
	}
	o := Owner{Name: anchor.Name, UID: am.GetUID()}
	if err := p.ensureSecret(ctx, agentSecretName(rec.Name), func() (*corev1.Secret, error) {
		token, err := control.IssueShardToken(ctx, p.cfg.Store, rec.Name, p.cfg.Clock())
		if err != nil {
			return nil, err
		}
		return AgentSecret(p.ns(), spec, o, token), nil
	}); err != nil {
		return err
	}
	if spec.ExternalMySQL == nil {
		if err := p.ensureSecret(ctx, dbName(rec.Name), func() (*corev1.Secret, error) {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			return DBSecret(p.ns(), spec, o, hex.EncodeToString(b)), nil
		}); err != nil {
			return err
		}
	}
	objs, err := Objects(p.cfg.Settings, spec, o)
	if err != nil {
		return err
	}
	for _, u := range objs {
		if _, err := p.apply(ctx, u); err != nil {
			return err
		}
	}
	if !spec.DBReplica {
		return p.deleteReplica(ctx, rec.Name)
	}
	return nil
}

// deleteReplica deletes shard name's read replica, if it has one: its
// StatefulSet, Service and volume claims (a copy of the primary's data;
// found by the labels the claim template gave them). Only reads when there
// is none.
func (p *Provider) deleteReplica(ctx context.Context, name string) error {
	ns, rn := p.ns(), dbReplicaName(name)
	objs := []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rn}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rn}},
	}
	var pvcs corev1.PersistentVolumeClaimList
	if err := p.c.List(ctx, &pvcs, client.InNamespace(ns), client.MatchingLabels{
		LabelShard: name, LabelManagedBy: ManagedBy, LabelComponent: ComponentShardDBReplica}); err != nil {
		return fmt.Errorf("list the read replica's claims: %w", err)
	}
	for _, c := range pvcs.Items {
		if c.DeletionTimestamp == nil {
			objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.Name}})
		}
	}
	for _, o := range objs {
		if _, ok := o.(*corev1.PersistentVolumeClaim); ok {
			if err := p.c.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete claim %s: %w", o.GetName(), err)
			}
			p.log.Info("deleted the read replica's claim", "shard", name, "name", o.GetName())
			continue
		}
		cur := &metav1.PartialObjectMetadata{}
		gvk, err := apiutil.GVKForObject(o, p.scheme)
		if err != nil {
			return err
		}
		cur.SetGroupVersionKind(gvk)
		err = p.c.Get(ctx, client.ObjectKeyFromObject(o), cur)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("get %s %s: %w", gvk.Kind, o.GetName(), err)
		}
		if cur.GetDeletionTimestamp() != nil {
			continue
		}
		if err := p.c.Delete(ctx, o, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %s %s: %w", gvk.Kind, o.GetName(), err)
		}
		p.log.Info("deleted the read replica's object", "shard", name, "kind", gvk.Kind, "name", o.GetName())
	}
	return nil
}

// apply server-side-applies u unless the object already carries u's hash,
// and returns the object's metadata.
func (p *Provider) apply(ctx context.Context, u *unstructured.Unstructured) (metav1.Object, error) {
	key := client.ObjectKey{Namespace: u.GetNamespace(), Name: u.GetName()}
	cur := &metav1.PartialObjectMetadata{}
	cur.SetGroupVersionKind(u.GroupVersionKind())
	err := p.c.Get(ctx, key, cur)
	if err == nil && cur.GetAnnotations()[AnnotationHash] == u.GetAnnotations()[AnnotationHash] {
		return cur, nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get %s %s: %w", u.GetKind(), key.Name, err)
	}
	if err := p.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(ManagedBy), client.ForceOwnership); err != nil {
		return nil, fmt.Errorf("apply %s %s: %w", u.GetKind(), key.Name, err)
	}
	if err := p.c.Get(ctx, key, cur); err != nil {
		return nil, fmt.Errorf("get %s %s: %w", u.GetKind(), key.Name, err)
	}
	p.log.Debug("applied", "kind", u.GetKind(), "name", key.Name)
	return cur, nil
}

// ensureSecret creates the Secret name with make's content unless it
// exists: secrets are made once and never rewritten.
func (p *Provider) ensureSecret(ctx context.Context, name string, make func() (*corev1.Secret, error)) error {
	cur := &metav1.PartialObjectMetadata{}
	cur.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns(), Name: name}, cur)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get secret %s: %w", name, err)
	}
	s, err := make()
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	if err := p.c.Create(ctx, s, client.FieldOwner(ManagedBy)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create secret %s: %w", name, err)
	}
	return nil
}

// DeleteShard implements control.ShardProvider. It refuses a shard that
// holds sites; otherwise it deletes the shard's StatefulSets, Services,
// PodDisruptionBudget, Secrets, anchor and — the shard being empty — its
// volume claims, then its tokens and record.
func (p *Provider) DeleteShard(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ValidShardName(name); err != nil {
		return fmt.Errorf("kubernetes provider: %w", err)
	}
	if err := control.CheckShardEmpty(ctx, p.cfg.Store, name); err != nil {
		return fmt.Errorf("kubernetes provider: delete shard %s: %w", name, err)
	}
	ns, base := p.ns(), BaseName(name)
	objs := []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: base}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dbName(name)}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dbReplicaName(name)}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: base}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: base}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dbName(name)}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dbReplicaName(name)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: agentSecretName(name)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dbName(name)}},
	}
	// The claims the StatefulSets made from their templates: found by
	// label, and by the names the StatefulSet controller gives them.
	var pvcs corev1.PersistentVolumeClaimList
	if err := p.c.List(ctx, &pvcs, client.InNamespace(ns), client.MatchingLabels{LabelShard: name, LabelManagedBy: ManagedBy}); err != nil {
		return fmt.Errorf("kubernetes provider: list claims of shard %s: %w", name, err)
	}
	seen := map[string]bool{}
	for _, n := range []string{"data-" + base + "-0", "data-" + dbName(name) + "-0", "data-" + dbReplicaName(name) + "-0"} {
		seen[n] = true
		objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})
	}
	for _, c := range pvcs.Items {
		if !seen[c.Name] {
			objs = append(objs, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.Name}})
		}
	}
	// The anchor last: while it exists, ListShards still reports the
	// shard, so an interrupted deletion is finished later.
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: base}})
	bg := client.PropagationPolicy(metav1.DeletePropagationBackground)
	for _, o := range objs {
		if err := p.c.Delete(ctx, o, bg); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubernetes provider: delete %T %s: %w", o, o.GetName(), err)
		}
	}
	if err := control.RemoveShardRecord(ctx, p.cfg.Store, name); err != nil {
		return fmt.Errorf("kubernetes provider: %w", err)
	}
	p.log.Info("deleted shard", "shard", name, "namespace", ns)
	return nil
}

// ListShards implements control.ShardLister: the shards whose anchor
// ConfigMap exists.
func (p *Provider) ListShards(ctx context.Context) ([]string, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMapList"))
	if err := p.c.List(ctx, &list, client.InNamespace(p.ns()),
		client.MatchingLabels{LabelManagedBy: ManagedBy, LabelComponent: ComponentShard}); err != nil {
		return nil, fmt.Errorf("kubernetes provider: list shards: %w", err)
	}
	var names []string
	for _, cm := range list.Items {
		if n := cm.Labels[LabelShard]; n != "" && cm.Name == BaseName(n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// WatchShards implements control.ShardWatcher: it watches the namespace's
// StatefulSets of shards and reports every Kubernetes shard's phase when
// they change (Ready when the shard pod — and its MariaDB, unless external,
// and its read replica, if any — is ready; Degraded when not after having
// been; else Pending; a read replica that is no longer ready does not
// degrade a Ready shard: the pooler sends the reads to the primary). Every
// Resync it also re-applies every shard's objects.
func (p *Provider) WatchShards(ctx context.Context, report func(ctx context.Context, st control.ShardStatus) error) error {
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
	c, err := cache.New(p.cfg.REST, cache.Options{
		Scheme: p.scheme, DefaultNamespaces: map[string]cache.Config{p.ns(): {}}, DefaultLabelSelector: sel,
	})
	if err != nil {
		return fmt.Errorf("kubernetes provider: cache: %w", err)
	}
	kick := make(chan struct{}, 1)
	wake := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	inf, err := c.GetInformer(ctx, &appsv1.StatefulSet{})
	if err != nil {
		return fmt.Errorf("kubernetes provider: informer: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { wake() },
		UpdateFunc: func(any, any) { wake() },
		DeleteFunc: func(any) { wake() },
	}); err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Start(cctx) }()
	if !c.WaitForCacheSync(cctx) {
		cancel()
		<-done
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kubernetes provider: cache did not sync")
	}
	resync := time.NewTicker(p.cfg.Resync)
	defer resync.Stop()
	poll := time.NewTicker(30 * time.Second) // heals a missed report
	defer poll.Stop()
	p.resync(ctx)
	for {
		if err := p.observe(ctx, c, report); err != nil && ctx.Err() == nil {
			p.log.Warn("observing shards", "err", err)
		}
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return nil
		case err := <-done:
			// The cache also stops (without an error) when ctx ends;
			// select may see that first.
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("kubernetes provider: cache stopped: %w", err)
		case <-kick:
		case <-poll.C:
		case <-resync.C:
			p.resync(ctx)
		}
	}
}

// resync re-applies the objects of every Kubernetes shard in the store.
func (p *Provider) resync(ctx context.Context) {
	shards, err := p.cfg.Store.ListShards(ctx)
	if err != nil {
		p.log.Warn("resync: listing shards", "err", err)
		return
	}
	for _, sh := range shards {
		if sh.Provider != ProviderKubernetes {
			continue
		}
		if err := p.Reconcile(ctx, sh.Name); err != nil && ctx.Err() == nil {
			p.log.Warn("resync", "shard", sh.Name, "err", err)
		}
	}
}

// observe reports the phase of every Kubernetes shard from the cache.
func (p *Provider) observe(ctx context.Context, r client.Reader, report func(context.Context, control.ShardStatus) error) error {
	shards, err := p.cfg.Store.ListShards(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sh := range shards {
		if sh.Provider != ProviderKubernetes {
			continue
		}
		st, err := p.status(ctx, r, sh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, report(ctx, st))
	}
	return errors.Join(errs...)
}

// status derives shard sh's status from its StatefulSets.
func (p *Provider) status(ctx context.Context, r client.Reader, sh store.Shard) (control.ShardStatus, error) {
	get := func(name string) (*appsv1.StatefulSet, error) {
		s := &appsv1.StatefulSet{}
		err := r.Get(ctx, client.ObjectKey{Namespace: p.ns(), Name: name}, s)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return s, err
	}
	agent, err := get(BaseName(sh.Name))
	if err != nil {
		return control.ShardStatus{}, err
	}
	db, err := get(dbName(sh.Name))
	if err != nil {
		return control.ShardStatus{}, err
	}
	var problems []string
	switch {
	case agent == nil:
		problems = append(problems, "StatefulSet "+BaseName(sh.Name)+" missing")
	case !stsReady(agent):
		problems = append(problems, fmt.Sprintf("shard pod not ready (%d/%d)", agent.Status.ReadyReplicas, replicas(agent)))
	}
	if db != nil && !stsReady(db) {
		problems = append(problems, fmt.Sprintf("database pod not ready (%d/%d)", db.Status.ReadyReplicas, replicas(db)))
	}
	replica, err := get(dbReplicaName(sh.Name))
	if err != nil {
		return control.ShardStatus{}, err
	}
	st := control.ShardStatus{Name: sh.Name, Phase: store.ShardReady, Reason: "pods ready"}
	if replica != nil && !stsReady(replica) {
		msg := fmt.Sprintf("read replica pod not ready (%d/%d)", replica.Status.ReadyReplicas, replicas(replica))
		// A new shard waits for its replica; a shard that has been
		// Ready stays so (the pooler falls back to the primary), and
		// says why its reads are not spread.
		if sh.ProviderPhase == store.ShardReady || sh.ProviderPhase == store.ShardDegraded {
			st.Reason = "pods ready; " + msg + ": reads go to the primary"
		} else {
			problems = append(problems, msg)
		}
	}
	if len(problems) > 0 {
		st.Phase, st.Reason = store.ShardPending, strings.Join(problems, "; ")
		if sh.ProviderPhase == store.ShardReady || sh.ProviderPhase == store.ShardDegraded {
			st.Phase = store.ShardDegraded
		}
	}
	return st, nil
}

func replicas(s *appsv1.StatefulSet) int32 {
	if s.Spec.Replicas == nil {
		return 1
	}
	return *s.Spec.Replicas
}

// stsReady: every replica of the current spec is ready.
func stsReady(s *appsv1.StatefulSet) bool {
	return s.Status.ObservedGeneration >= s.Generation && s.Status.ReadyReplicas >= replicas(s)
}
