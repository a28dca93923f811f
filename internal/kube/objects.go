// Package kube is the Kubernetes shard provider: it runs each shard (a cell
// of ~50 sites) as a handful of namespaced objects — StatefulSets for the
// shard agent and its MariaDB (and, optionally, the MariaDB's read
// replica), their Services, Secrets, a PodDisruptionBudget — applied with
// server-side apply, and reports each shard's phase from its StatefulSets'
// status. See docs/kubernetes.md and docs/database.md (Kubernetes).
package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/sitefw"
)

// Labels and annotations on every object the provider makes.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelComponent = "app.kubernetes.io/component"
	// LabelShard names the shard an object belongs to.
	LabelShard = "aipress.io/shard"
	// AnnotationHash is the SHA-256 of the object as last applied; an
	// object that carries the hash of what would be applied now is left
	// alone, so a reconcile of an unchanged shard writes nothing.
	AnnotationHash = "aipress.io/applied-hash"
	// ManagedBy is LabelManagedBy's value (and the field manager).
	ManagedBy = "aipress"
)

// Components (LabelComponent values).
const (
	ComponentShard   = "shard"    // the anchor ConfigMap, agent StatefulSet and Service
	ComponentShardDB = "shard-db" // the MariaDB StatefulSet, Service and Secret
	// ComponentShardDBReplica: the MariaDB read replica's StatefulSet and
	// Service (ShardSpec.DBReplica).
	ComponentShardDBReplica = "shard-db-replica"
)

// Ports of the shard pod.
const (
	// PortHealth serves the agent's /readyz and /livez (aipress shard
	// --health-addr).
	PortHealth = 8081
	// PortGateway is the agent's gateway for the edges (mutual TLS:
	// static files and FastCGI to the pools' Unix sockets), reached on the
	// pod's address through the headless Service.
	PortGateway = 8443
	PortMySQL   = 3306
)

// Mount points.
const (
	ShardDataDir = "/var/lib/aipress-shard"
	TransferDir  = "/var/lib/aipress-transfers"
	MariaDBDir   = "/var/lib/mysql"
)

// ExternalMySQL names a MySQL server the shard uses instead of a MariaDB of
// its own (e.g. Cloud SQL): no MariaDB StatefulSet, Service or Secret is
// made.
type ExternalMySQL struct {
	// Host is host:port.
	Host string `json:"host"`
	// Secret is an existing Secret in the namespace with the keys
	// "username" and "password" of an account that may create databases
	// and users.
	Secret string `json:"secret"`
	// Replica, if set, is host:port of a read replica of that server
	// (e.g. a Cloud SQL read replica) that the shard's pooler sends reads
	// to; the same account logs in to it. Its replication is the
	// provider's (Cloud SQL's) business, not the agent's.
	Replica string `json:"replica,omitempty"`
}

// ShardSpec is one shard as the provider makes it.
type ShardSpec struct {
	Name     string            `json:"name"`
	Capacity int               `json:"capacity"`
	Labels   map[string]string `json:"labels,omitempty"`
	// ExternalMySQL, if set, replaces the shard's own MariaDB.
	ExternalMySQL *ExternalMySQL `json:"external_mysql,omitempty"`
	// DBReplica gives the shard's own MariaDB a read replica: a second
	// MariaDB StatefulSet that the agent seeds and points at the primary
	// (GTID replication), and that the agent's pooler sends reads to. Not
	// with ExternalMySQL (give ExternalMySQL.Replica instead).
	DBReplica bool `json:"db_replica,omitempty"`
}

// Resources are a container's requests and memory limit ("500m", "1Gi").
type Resources struct {
	CPU, Memory, MemoryLimit string
}

// Settings are what every shard's objects share.
type Settings struct {
	Namespace string
	// Image runs `aipress shard`; MariaDBImage the shards' MariaDB
	// (default docker.io/library/mariadb:11.4).
	Image, MariaDBImage string
	// PullPolicy of both images (default IfNotPresent).
	PullPolicy corev1.PullPolicy
	// ServerURL is the control plane's API as the shard pods reach it.
	ServerURL string
	// TransferURL is the bucket site moves go through (gocloud.dev/blob
	// URL); every shard must reach the same one. With TransferClaim it
	// defaults to file://TransferDir.
	TransferURL string
	// TransferClaim, if set, is a ReadWriteMany PersistentVolumeClaim
	// mounted at TransferDir in every shard pod: a file:// transfer store
	// all shards share.
	TransferClaim string
	// PublicPort is the edges' HTTP port (for the sites' URLs).
	PublicPort int
	// StorageClass of the PersistentVolumeClaims; empty: the cluster's
	// default.
	StorageClass string
	// SiteStorage and DBStorage size the shard's and its MariaDB's
	// volumes (default 20Gi and 10Gi).
	SiteStorage, DBStorage string
	// ShardResources and DBResources (defaults: 500m/1Gi/4Gi and
	// 250m/1Gi/2Gi).
	ShardResources, DBResources Resources
	// ExtraArgs are appended to the agent's command line.
	ExtraArgs []string
	// DirectDB turns the agents' connection pooler off (--db-pooler=false):
	// the sites' PHP connects to the database server itself, so the site
	// firewall lets the site users reach it. With the pooler (default) the
	// sites' PHP talks to the pooler's Unix socket only, and the site
	// firewall keeps the site users off the database server too. Not with
	// a read replica (the pooler routes the reads).
	DirectDB bool
	// SiteFirewallArgs are appended to the site firewall init container's
	// `aipress sitefw apply` (e.g. --allow 10.8.0.0/14:3306 where the
	// database's Service address is not what the pod's packets carry).
	SiteFirewallArgs []string
}

func (s *Settings) defaults() {
	if s.MariaDBImage == "" {
		s.MariaDBImage = "docker.io/library/mariadb:11.4"
	}
	if s.PullPolicy == "" {
		s.PullPolicy = corev1.PullIfNotPresent
	}
	if s.PublicPort == 0 {
		s.PublicPort = 80
	}
	if s.SiteStorage == "" {
		s.SiteStorage = "20Gi"
	}
	if s.DBStorage == "" {
		s.DBStorage = "10Gi"
	}
	if s.ShardResources == (Resources{}) {
		s.ShardResources = Resources{CPU: "500m", Memory: "1Gi", MemoryLimit: "4Gi"}
	}
	if s.DBResources == (Resources{}) {
		s.DBResources = Resources{CPU: "250m", Memory: "1Gi", MemoryLimit: "2Gi"}
	}
}

// Object names of shard name.
func BaseName(shard string) string        { return "aipress-shard-" + shard }
func agentSecretName(shard string) string { return BaseName(shard) + "-agent" }
func dbName(shard string) string          { return BaseName(shard) + "-db" }
func dbReplicaName(shard string) string   { return BaseName(shard) + "-db-replica" }

// DBName and DBReplicaName are the names of shard's MariaDB StatefulSet
// and Service and of its read replica's.
func DBName(shard string) string        { return dbName(shard) }
func DBReplicaName(shard string) string { return dbReplicaName(shard) }

// Secret keys.
const (
	KeyToken        = "token"
	KeyRootPassword = "root-password"
)

// ValidShardName reports whether shard name makes valid object names (a
// DNS label of at most 40 characters, leaving room for the suffixes and the
// StatefulSet's pod and claim names).
func ValidShardName(name string) error {
	if len(name) > 40 {
		return fmt.Errorf("shard name %q: longer than 40 characters", name)
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("shard name %q: %s", name, errs[0])
	}
	return nil
}

func objectLabels(shard, component string) map[string]string {
	return map[string]string{
		LabelName: "aipress", LabelManagedBy: ManagedBy, LabelComponent: component, LabelShard: shard,
	}
}

// selector is the subset of labels a StatefulSet selects its pods by.
func selector(shard, component string) map[string]string {
	return map[string]string{LabelComponent: component, LabelShard: shard}
}

// Anchor is the ConfigMap that stands for the shard in the cluster: it
// holds the spec, and owns every other object of the shard, so deleting it
// lets the garbage collector remove them (the provider deletes them
// itself too, and the volume claims only when the shard is empty).
func Anchor(ns string, spec ShardSpec) (*corev1.ConfigMap, error) {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: BaseName(spec.Name), Namespace: ns, Labels: objectLabels(spec.Name, ComponentShard)},
		Data:       map[string]string{"shard.json": string(b) + "\n"},
	}, nil
}

// Owner is a reference to an anchor ConfigMap.
type Owner struct {
	Name string
	UID  types.UID
}

func ownerRefs(o Owner) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: o.Name, UID: o.UID, Controller: new(true)}}
}

// AgentSecret holds the shard agent's token.
func AgentSecret(ns string, spec ShardSpec, o Owner, token string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: agentSecretName(spec.Name), Namespace: ns,
			Labels: objectLabels(spec.Name, ComponentShard), OwnerReferences: ownerRefs(o)},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{KeyToken: token},
	}
}

// DBSecret holds the shard's MariaDB root password.
func DBSecret(ns string, spec ShardSpec, o Owner, password string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: dbName(spec.Name), Namespace: ns,
			Labels: objectLabels(spec.Name, ComponentShardDB), OwnerReferences: ownerRefs(o)},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{KeyRootPassword: password},
	}
}

// CheckSpec checks the database options of spec under set.
func CheckSpec(set Settings, spec ShardSpec) error {
	x := spec.ExternalMySQL
	switch {
	case spec.DBReplica && x != nil:
		return fmt.Errorf("shard %s: an in-cluster read replica needs the shard's own MariaDB; an external server's replica is given by address (ExternalMySQL.Replica)", spec.Name)
	case x != nil && x.Replica != "" && !validHostPort(x.Replica):
		return fmt.Errorf("shard %s: external replica %q: want host:port", spec.Name, x.Replica)
	case (spec.DBReplica || x != nil && x.Replica != "") && set.DirectDB:
		return fmt.Errorf("shard %s: a read replica needs the pooler (it routes the reads), which DirectDB turns off", spec.Name)
	case spec.DBReplica && len(dbReplicaName(spec.Name)) > validation.DNS1035LabelMaxLength:
		return fmt.Errorf("shard %s: name too long for a read replica's Service %s (at most 63 characters)", spec.Name, dbReplicaName(spec.Name))
	}
	return nil
}

func validHostPort(v string) bool {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

// Objects returns the objects of shard spec that are applied (not the
// anchor, not the Secrets, which are created once): in order, the agent's
// headless Service and StatefulSet, the PodDisruptionBudget, unless the
// shard uses an external MySQL the MariaDB Service and StatefulSet, and
// with DBReplica the replica's Service and StatefulSet. Each is ready to
// apply: status and creation timestamps removed, the hash annotation set.
func Objects(set Settings, spec ShardSpec, o Owner) ([]*unstructured.Unstructured, error) {
	set.defaults()
	if err := CheckSpec(set, spec); err != nil {
		return nil, err
	}
	objs := []runtime.Object{shardService(set, spec, o), shardStatefulSet(set, spec, o), pdb(set, spec, o)}
	if spec.ExternalMySQL == nil {
		objs = append(objs, dbService(set, spec, o), dbStatefulSet(set, spec, o))
	}
	if spec.DBReplica {
		objs = append(objs, dbReplicaService(set, spec, o), dbReplicaStatefulSet(set, spec, o))
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := toApply(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// toApply converts obj for server-side apply: no status, no creation
// timestamps (typed objects carry them empty), and the hash annotation.
func toApply(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	if vcts, ok, _ := unstructured.NestedSlice(u.Object, "spec", "volumeClaimTemplates"); ok {
		for _, v := range vcts {
			if vm, ok := v.(map[string]any); ok {
				delete(vm, "status")
				unstructured.RemoveNestedField(vm, "metadata", "creationTimestamp")
			}
		}
		_ = unstructured.SetNestedSlice(u.Object, vcts, "spec", "volumeClaimTemplates")
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationHash] = hex.EncodeToString(sum[:16])
	u.SetAnnotations(ann)
	return u, nil
}

func meta(ns, name string, lbl map[string]string, o Owner) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbl, OwnerReferences: ownerRefs(o)}
}

func resources(r Resources) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(r.CPU), corev1.ResourceMemory: resource.MustParse(r.Memory)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(r.MemoryLimit)},
	}
}

func claim(name string, lbl map[string]string, class, size string) corev1.PersistentVolumeClaim {
	c := corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if class != "" {
		c.Spec.StorageClassName = &class
	}
	return c
}

// shardService is the headless Service that governs the shard's
// StatefulSet: its pod is aipress-shard-NAME-0.aipress-shard-NAME, which
// edges reach on the gateway's port.
func shardService(set Settings, spec ShardSpec, o Owner) *corev1.Service {
	ports := []corev1.ServicePort{
		{Name: "health", Port: PortHealth, TargetPort: intstr.FromString("health")},
		{Name: "gateway", Port: PortGateway, TargetPort: intstr.FromString("gateway")},
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(set.Namespace, BaseName(spec.Name), objectLabels(spec.Name, ComponentShard), o),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, Selector: selector(spec.Name, ComponentShard), Ports: ports,
		},
	}
}

func shardStatefulSet(set Settings, spec ShardSpec, o Owner) *appsv1.StatefulSet {
	name := BaseName(spec.Name)
	lbl := objectLabels(spec.Name, ComponentShard)
	capacity := spec.Capacity
	args := []string{"shard", "--name", spec.Name, "--data-dir", ShardDataDir,
		"--capacity", strconv.Itoa(capacity), "--provider", ProviderKubernetes,
		"--public-port", strconv.Itoa(set.PublicPort), "--health-addr", ":" + strconv.Itoa(PortHealth),
		// Edges run in other pods: they reach the sites through the
		// agent's gateway on the pod's address (mutual TLS with
		// certificates the control plane issues; the pools themselves are
		// root-owned Unix sockets no other process of the pod can use).
		// The database server comes from the AIPRESS_DB_* variables below.
		"--gateway-addr", ":" + strconv.Itoa(PortGateway), "--gateway-advertise", "$(POD_IP)"}
	transferURL := set.TransferURL
	if transferURL == "" && set.TransferClaim != "" {
		transferURL = "file://" + TransferDir
	}
	if transferURL != "" {
		args = append(args, "--transfer-url", transferURL)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Labels)) {
		args = append(args, "--label", k+"="+spec.Labels[k])
	}
	// The database tier (docs/database.md, Kubernetes): the pooler runs
	// in the agent's process, and php-fpm, the agent's child in the same
	// container, reaches its Unix socket under --data-dir; reads go to the
	// replica while it keeps up. The in-cluster replica starts empty: the
	// agent seeds it and starts its replication (--db-replica-managed); an
	// external server's replica replicates by itself.
	if set.DirectDB {
		args = append(args, "--db-pooler=false")
	}
	switch {
	case spec.DBReplica:
		args = append(args, "--db-replica", dbReplicaName(spec.Name)+":"+strconv.Itoa(PortMySQL), "--db-replica-managed")
	case spec.ExternalMySQL != nil && spec.ExternalMySQL.Replica != "":
		args = append(args, "--db-replica", spec.ExternalMySQL.Replica)
	}
	// The init container sitefw applies the site users' firewall: the
	// agent has no CAP_NET_ADMIN to do it itself.
	args = append(args, "--site-firewall", "off")
	args = append(args, set.ExtraArgs...)
	env := []corev1.EnvVar{
		{Name: "AIPRESS_SERVER", Value: set.ServerURL},
		{Name: "AIPRESS_SHARD_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: agentSecretName(spec.Name)}, Key: KeyToken}}},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
	}
	if x := spec.ExternalMySQL; x != nil {
		env = append(env,
			corev1.EnvVar{Name: "AIPRESS_DB_HOST", Value: x.Host},
			corev1.EnvVar{Name: "AIPRESS_DB_USER", ValueFrom: secretRef(x.Secret, "username")},
			corev1.EnvVar{Name: "AIPRESS_DB_PASSWORD", ValueFrom: secretRef(x.Secret, "password")})
	} else {
		env = append(env,
			corev1.EnvVar{Name: "AIPRESS_DB_HOST", Value: dbName(spec.Name) + ":" + strconv.Itoa(PortMySQL)},
			corev1.EnvVar{Name: "AIPRESS_DB_USER", Value: "root"},
			corev1.EnvVar{Name: "AIPRESS_DB_PASSWORD", ValueFrom: secretRef(dbName(spec.Name), KeyRootPassword)})
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}},
			PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 2,
		}
	}
	// The site users reach the database server only when their PHP
	// connects to it directly; with the pooler (the agent's process, not
	// a site user) nothing of the sites needs it, nor the replica.
	dbHost := ""
	if set.DirectDB {
		dbHost = dbName(spec.Name) + ":" + strconv.Itoa(PortMySQL)
		if spec.ExternalMySQL != nil {
			dbHost = spec.ExternalMySQL.Host
		}
	}
	pod := corev1.PodSpec{
		AutomountServiceAccountToken:  new(false),
		TerminationGracePeriodSeconds: new(int64(60)),
		EnableServiceLinks:            new(false),
		SecurityContext: &corev1.PodSecurityContext{
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		InitContainers: []corev1.Container{siteFirewallContainer(set, dbHost)},
		Containers: []corev1.Container{{
			Name: "shard", Image: set.Image, ImagePullPolicy: set.PullPolicy,
			Command: []string{"aipress"}, Args: args, Env: env,
			SecurityContext: shardSecurityContext(),
			Ports: []corev1.ContainerPort{
				{Name: "health", ContainerPort: PortHealth},
				{Name: "gateway", ContainerPort: PortGateway},
			},
			Resources: resources(set.ShardResources),
			// Ready once the agent registered and converged its sites
			// for the first time; alive while its process answers. The
			// first convergence of a full shard installs up to 50 sites,
			// so the startup probe allows 30 minutes.
			StartupProbe:   probe("/livez", 10, 180),
			ReadinessProbe: probe("/readyz", 5, 3),
			LivenessProbe:  probe("/livez", 10, 6),
			VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: ShardDataDir}},
		}},
	}
	if set.TransferClaim != "" {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "transfers", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: set.TransferClaim}}})
		c := &pod.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "transfers", MountPath: TransferDir})
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(set.Namespace, name, lbl, o),
		Spec: appsv1.StatefulSetSpec{
			Replicas: new(int32(1)), ServiceName: name,
			Selector: &metav1.LabelSelector{MatchLabels: selector(spec.Name, ComponentShard)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: pod},
			// Claims outlive the StatefulSet: the provider deletes them
			// itself, and only once the shard holds no site.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{claim("data", lbl, set.StorageClass, set.SiteStorage)},
		},
	}
}

// ShardCapabilities are the only capabilities the shard agent keeps (all
// others are dropped). It runs as root and:
//
//   - SETUID, SETGID: php-fpm's master starts each pool's workers as the
//     site's user and group, and the agent runs WordPress's installer and
//     cron with the PHP CLI as them;
//   - CHOWN: gives each site its tmp, logs and uploads and the root-owned
//     files its group (wp-config.php), and re-owns a site's files when
//     its user is created anew (a pod's fresh /etc/passwd);
//   - DAC_OVERRIDE: reads, backs up, moves and removes files the sites'
//     users own with modes that shut out others, root included;
//   - FOWNER: sets modes on those files (chmod of a file one does not own);
//   - KILL: signals processes of other users: php-fpm's master stops and
//     recycles workers running as site users, the agent ends a PHP CLI
//     run that outlives its deadline;
//   - SYS_ADMIN: php-fpm and the PHP CLI run in a mount namespace of their
//     own with a /proc mounted hidepid=invisible, so a site's PHP cannot
//     see other sites' processes (internal/procns); the shard refuses to
//     run site code without it. It is the broadest of these, but site code
//     never holds it: workers run as unprivileged site users under
//     no_new_privs, and RuntimeDefault's seccomp profile still applies.
//
// useradd, usermod and userdel need nothing more (they write root's own
// files); nothing binds a port below 1024; no NET_RAW, SYS_CHROOT, MKNOD,
// AUDIT_WRITE, SETFCAP, SETPCAP, NET_BIND_SERVICE or FSETID, which the
// runtime's default set would give.
var ShardCapabilities = []corev1.Capability{"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL", "SYS_ADMIN"}

// shardSecurityContext is the agent container's: root (it creates users
// and runs php-fpm's master) with ShardCapabilities only, and no privilege
// escalation: the kernel's no_new_privs flag, which every process of the
// container inherits — site PHP included — so that no set-user-ID binary or
// file capability in the image can raise a site's privileges. It leaves
// setuid()/setgid() by a process that holds CAP_SETUID alone, so php-fpm's
// master still switches to the site users (it drops privileges; it never
// executes a set-user-ID program to gain them).
func shardSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: ShardCapabilities},
	}
}

// siteFirewallContainer is the shard pod's init container: with
// CAP_NET_ADMIN only, before the agent starts, it applies owner-match
// nftables rules in the pod's network namespace (aipress sitefw apply)
// that keep every user of the site ID range — every site user the agent
// will create — off loopback (the agent's health, gateway and every other
// port of the pod), the pod's own address, the metadata address and the
// private networks (the cluster: the API, other shards, the edges'
// metrics), except the DNS resolvers and, when the sites' PHP connects to
// it directly (dbHost not empty: no pooler), the shard's database server.
// A NetworkPolicy cannot do this: it sees the pod, not which user in it
// sends.
func siteFirewallContainer(set Settings, dbHost string) corev1.Container {
	args := []string{"sitefw", "apply", "--uid-range", sitefw.DefaultSiteIDs.String(), "--deny-private"}
	if dbHost != "" {
		args = append(args, "--allow", dbHost)
	}
	args = append(args, set.SiteFirewallArgs...)
	return corev1.Container{
		Name: "sitefw", Image: set.Image, ImagePullPolicy: set.PullPolicy,
		Command: []string{"aipress"}, Args: args,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                new(int64(0)),
			AllowPrivilegeEscalation: new(false),
			ReadOnlyRootFilesystem:   new(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN"}},
		},
	}
}

func secretRef(name, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

// pdb keeps voluntary disruptions (node drains, upgrades) from evicting
// the shard's pods: a cell has one replica, so an eviction is an outage of
// its sites. Move the sites away first (aipress shard drain). The read
// replica's pod is not covered: evicting it sends the reads to the primary
// for a while (the pooler falls back), no outage, so it does not hold up a
// node's drain.
func pdb(set Settings, spec ShardSpec, o Owner) *policyv1.PodDisruptionBudget {
	zero := intstr.FromInt32(0)
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(set.Namespace, BaseName(spec.Name), objectLabels(spec.Name, ComponentShard), o),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &zero,
			Selector: &metav1.LabelSelector{
				MatchLabels: map[string]string{LabelShard: spec.Name, LabelManagedBy: ManagedBy},
				MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: LabelComponent, Operator: metav1.LabelSelectorOpNotIn, Values: []string{ComponentShardDBReplica}},
				},
			},
		},
	}
}

func dbService(set Settings, spec ShardSpec, o Owner) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(set.Namespace, dbName(spec.Name), objectLabels(spec.Name, ComponentShardDB), o),
		Spec: corev1.ServiceSpec{
			Selector: selector(spec.Name, ComponentShardDB),
			Ports:    []corev1.ServicePort{{Name: "mysql", Port: PortMySQL, TargetPort: intstr.FromString("mysql")}},
		},
	}
}

// mariadbArgs are the MariaDB server's options: utf8mb4 and the sql_mode
// (mariadb.WordPressSQLMode) as WordPress sets them, connections for ~50 sites' pools, and the binary log (ROW events with
// full images and column metadata, GTIDs of domain 0, a few days) that
// point-in-time recovery reads and the read replica follows: the options
// internal/mariadb gives the servers it runs itself (BinlogOptions), logs in
// the data directory. A replica (serverID 2) adds ReplicaOptions: read-only
// (only the replication thread and root write), its relay log recovered
// after a crash.
func mariadbArgs(serverID int, replica bool) []string {
	args := []string{"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci", "--max-connections=500",
		"--sql-mode=" + mariadb.WordPressSQLMode}
	opts := mariadb.BinlogOptions(serverID, MariaDBDir)
	if replica {
		opts = append(opts, mariadb.ReplicaOptions(MariaDBDir)...)
	}
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		args = append(args, "--"+strings.ReplaceAll(k, "_", "-")+"="+v)
	}
	return args
}

func dbStatefulSet(set Settings, spec ShardSpec, o Owner) *appsv1.StatefulSet {
	return mariadbStatefulSet(set, spec, o, dbName(spec.Name), ComponentShardDB, mariadbArgs(1, false), false)
}

func dbReplicaService(set Settings, spec ShardSpec, o Owner) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(set.Namespace, dbReplicaName(spec.Name), objectLabels(spec.Name, ComponentShardDBReplica), o),
		Spec: corev1.ServiceSpec{
			Selector: selector(spec.Name, ComponentShardDBReplica),
			Ports:    []corev1.ServicePort{{Name: "mysql", Port: PortMySQL, TargetPort: intstr.FromString("mysql")}},
		},
	}
}

// dbReplicaStatefulSet is the read replica: the primary's image, root
// password (its Secret) and resources, a volume of its own, and the
// replica's options. It starts as an empty server; the agent
// (--db-replica-managed) seeds it from the primary and starts its
// replication, and seeds it again when its data cannot be trusted.
// Ready means it answers, not that it replicates: the agent must reach it
// through its Service to seed it, and the pooler watches replication and
// lag itself.
func dbReplicaStatefulSet(set Settings, spec ShardSpec, o Owner) *appsv1.StatefulSet {
	return mariadbStatefulSet(set, spec, o, dbReplicaName(spec.Name), ComponentShardDBReplica, mariadbArgs(2, true), true)
}

// mariadbStatefulSet is a MariaDB StatefulSet of the image, probed by its
// healthcheck.sh: "connect" (the server accepts TCP connections; the
// credentials are not checked) and, but on a replica, "innodb_initialized",
// which logs in as the healthcheck account the image made with a password
// of the pod's own (.my-healthcheck.cnf). A replica's seed replaces its
// accounts by the primary's, that one included, so a replica is probed by
// "connect" only. (The script has no "started" test.)
func mariadbStatefulSet(set Settings, spec ShardSpec, o Owner, name, component string, args []string, replica bool) *appsv1.StatefulSet {
	lbl := objectLabels(spec.Name, component)
	ready := []string{"--connect", "--innodb_initialized"}
	if replica {
		ready = []string{"--connect"}
	}
	probe := func(args []string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: append([]string{"healthcheck.sh"}, args...)}},
			PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 5,
		}
	}
	pod := corev1.PodSpec{
		AutomountServiceAccountToken:  new(false),
		TerminationGracePeriodSeconds: new(int64(60)),
		EnableServiceLinks:            new(false),
		Containers: []corev1.Container{{
			Name: "mariadb", Image: set.MariaDBImage, ImagePullPolicy: set.PullPolicy,
			Env:            []corev1.EnvVar{{Name: "MARIADB_ROOT_PASSWORD", ValueFrom: secretRef(dbName(spec.Name), KeyRootPassword)}},
			Args:           args,
			Ports:          []corev1.ContainerPort{{Name: "mysql", ContainerPort: PortMySQL}},
			Resources:      resources(set.DBResources),
			StartupProbe:   probe(ready, 5, 60),
			ReadinessProbe: probe(ready, 5, 3),
			LivenessProbe:  probe([]string{"--connect"}, 10, 6),
			VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: MariaDBDir}},
		}},
	}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(set.Namespace, name, lbl, o),
		Spec: appsv1.StatefulSetSpec{
			Replicas: new(int32(1)), ServiceName: name,
			Selector: &metav1.LabelSelector{MatchLabels: selector(spec.Name, component)},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: pod},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{claim("data", lbl, set.StorageClass, set.DBStorage)},
		},
	}
}
