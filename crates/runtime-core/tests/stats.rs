//! runtime-core's stats RPCs against real containers: ContainerStats, ListContainerStats,
//! PodSandboxStats, ListPodSandboxStats, ListMetricDescriptors and ListPodSandboxMetrics
//! move when the containers work (CPU, memory, writable layer, network).
//!
//! One registry and one runtime-core daemon (bridge `kltstat0`, `198.18.42.0/24`) shared
//! by the tests. Needs root, runc, the CNI plugins, docker-registry, busybox-static and
//! cgroup v1 controllers (skipped without them, failed with `CI=true`).

mod cgroups;
mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, ensure};
use cgroups::PodCgroup;
use common::{Env, Pod, expect_code};
use cri_client::Code;
use cri_client::v1::{ContainerStats, ContainerStatsFilter, PodSandboxStatsFilter};
use test_harness::pods::eventually;
use test_harness::suite::{self, Test};

/// A container that idles until `/tmp/busy` exists, then spins.
const SPINS_ON_DEMAND: &str = "while true; do if [ -f /tmp/busy ]; then :; else sleep 0.2; fi; done";
/// A container that idles.
const IDLES: &str = "while true; do sleep 1; done";
/// Two TCP servers: 8080 sends 1 MB of zeros to each client, 8081 counts what it
/// receives and answers the count.
const TCP_SERVERS: &str = "nc -ll -p 8081 -e wc -c & nc -ll -p 8080 -e head -c 1000000 /dev/zero";
/// Bytes each way in the network test.
const TRANSFER: u64 = 1_000_000;

/// An id no runtime gave out.
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// How long stats may take to show a change (the writable layer is cached 2 s).
const SETTLE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    suite::run(
        cgroups::setup,
        vec![
            Test::new("cpu_usage_grows_under_a_busy_loop", cpu_usage_grows_under_a_busy_loop),
            Test::new(
                "memory_and_the_writable_layer_grow_when_the_container_fills_them",
                memory_and_the_writable_layer_grow_when_the_container_fills_them,
            ),
            Test::new(
                "pod_stats_count_network_traffic_processes_and_containers",
                pod_stats_count_network_traffic_processes_and_containers,
            ),
            Test::new(
                "list_filters_select_and_unknown_ids_are_not_found",
                list_filters_select_and_unknown_ids_are_not_found,
            ),
            Test::new(
                "pod_metrics_use_the_described_names_and_labels",
                pod_metrics_use_the_described_names_and_labels,
            ),
        ],
    )
}

/// ContainerStats of `id`, which must be there.
async fn stats(env: &Env, id: &str) -> anyhow::Result<ContainerStats> {
    env.client
        .container_stats(id)
        .await
        .context("ContainerStats")?
        .context("ContainerStats has no stats")
}

/// CPU time (ns) and nano cores of a sample.
fn cpu(stats: &ContainerStats) -> anyhow::Result<(u64, u64)> {
    let cpu = stats.cpu.as_ref().context("no cpu usage")?;
    ensure!(cpu.timestamp > 0, "cpu timestamp {}", cpu.timestamp);
    let value = |v: &Option<cri_client::v1::UInt64Value>| v.as_ref().map(|v| v.value).context("cpu value unset");
    Ok((value(&cpu.usage_core_nano_seconds)?, value(&cpu.usage_nano_cores)?))
}

/// Working set and usage (bytes) of a sample.
fn memory(stats: &ContainerStats) -> anyhow::Result<(u64, u64)> {
    let memory = stats.memory.as_ref().context("no memory usage")?;
    ensure!(memory.timestamp > 0, "memory timestamp {}", memory.timestamp);
    let value = |v: &Option<cri_client::v1::UInt64Value>| v.as_ref().map(|v| v.value).context("memory value unset");
    Ok((value(&memory.working_set_bytes)?, value(&memory.usage_bytes)?))
}

/// Used bytes and inodes of a sample's writable layer.
fn layer(stats: &ContainerStats) -> anyhow::Result<(u64, u64)> {
    let layer = stats.writable_layer.as_ref().context("no writable layer usage")?;
    ensure!(layer.timestamp > 0, "layer timestamp {}", layer.timestamp);
    let bytes = layer.used_bytes.as_ref().context("used_bytes unset")?.value;
    let inodes = layer.inodes_used.as_ref().context("inodes_used unset")?.value;
    Ok((bytes, inodes))
}

fn cpu_usage_grows_under_a_busy_loop(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("stats-cpu").await?;
        let id = env.start_script(&pod, "spinner", SPINS_ON_DEMAND).await?;
        let first = stats(env, &id).await?;
        let attributes = first.attributes.as_ref().context("no attributes")?;
        ensure!(attributes.id == id, "attributes {attributes:?}");
        ensure!(
            attributes.metadata.as_ref().map(|m| m.name.as_str()) == Some("spinner"),
            "{attributes:?}"
        );
        ensure!(attributes.labels.get("container").map(String::as_str) == Some("spinner"));

        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle_used, idle_cores) = cpu(&stats(env, &id).await?)?;
        ensure!(
            idle_cores < 300_000_000,
            "an idle container uses {idle_cores} nano cores"
        );

        let (code, _) = env.exec(&id, "touch /tmp/busy").await?;
        ensure!(code == 0, "touch exited {code}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (busy_used, busy_cores) = cpu(&stats(env, &id).await?)?;
        eprintln!(
            "cpu: idle {idle_cores} nano cores; busy {busy_cores} nano cores, {} ms of cpu in ~2 s",
            (busy_used - idle_used) / 1_000_000
        );
        // Conservative bounds: the two cores are shared with whatever else runs (builds,
        // the other tests), so the spinner may get well under one core.
        ensure!(
            busy_used >= idle_used + 200_000_000,
            "2 s of spinning added only {} ns of CPU time",
            busy_used.saturating_sub(idle_used)
        );
        ensure!(
            busy_cores >= 100_000_000 && busy_cores > 4 * idle_cores,
            "a spinning container uses {busy_cores} nano cores, an idle one {idle_cores}"
        );
        env.remove(&pod).await
    })
}

fn memory_and_the_writable_layer_grow_when_the_container_fills_them(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("stats-memory").await?;
        let id = env.start_script(&pod, "filler", IDLES).await?;
        let before = stats(env, &id).await?;
        let (working_set, usage) = memory(&before)?;
        let (layer_bytes, layer_inodes) = layer(&before)?;
        ensure!(
            usage >= working_set && usage > 0,
            "usage {usage}, working set {working_set}"
        );
        let memory_fields = before.memory.as_ref().context("no memory")?;
        ensure!(
            memory_fields.page_faults.as_ref().is_some_and(|v| v.value > 0)
                && memory_fields.major_page_faults.is_some()
                && memory_fields.rss_bytes.is_some(),
            "{memory_fields:?}"
        );

        // 64 MiB in the container's /dev/shm (a tmpfs charged to its memory cgroup).
        let (code, _) = env.exec(&id, "head -c 67108864 /dev/zero > /dev/shm/fill").await?;
        ensure!(code == 0, "filling /dev/shm exited {code}");
        let after = stats(env, &id).await?;
        let (grown_working_set, _) = memory(&after)?;
        eprintln!("memory: working set {working_set} -> {grown_working_set} bytes");
        ensure!(
            grown_working_set >= working_set + 60 * 1024 * 1024,
            "64 MiB in /dev/shm took the working set from {working_set} to {grown_working_set}"
        );

        let (code, _) = env.exec(&id, "head -c 1048576 /dev/urandom > /data.bin").await?;
        ensure!(code == 0, "writing a file exited {code}");
        let (grown_bytes, grown_inodes) = eventually("the writable layer to grow", SETTLE, || async {
            let (bytes, inodes) = layer(&stats(env, &id).await?)?;
            Ok((bytes >= layer_bytes + 1024 * 1024 && inodes > layer_inodes).then_some((bytes, inodes)))
        })
        .await?;
        eprintln!("writable layer: {layer_bytes} -> {grown_bytes} bytes, {layer_inodes} -> {grown_inodes} inodes");
        env.remove(&pod).await
    })
}

/// Reads from `ip:8080` to the end, and sends [`TRANSFER`] bytes to `ip:8081`; returns
/// what came back from each.
fn transfer(ip: &str) -> anyhow::Result<(usize, String)> {
    let timeout = Some(Duration::from_secs(10));
    let mut download = TcpStream::connect((ip, 8080)).context("connecting to 8080")?;
    download.set_read_timeout(timeout)?;
    let mut received = Vec::new();
    download.read_to_end(&mut received).context("reading from 8080")?;
    let mut upload = TcpStream::connect((ip, 8081)).context("connecting to 8081")?;
    upload.set_read_timeout(timeout)?;
    upload.write_all(&vec![b'x'; TRANSFER as usize])?;
    upload.shutdown(Shutdown::Write)?;
    let mut count = String::new();
    upload
        .read_to_string(&mut count)
        .context("reading the count from 8081")?;
    Ok((received.len(), count.trim().to_owned()))
}

/// rx and tx bytes of the pod's default interface.
async fn pod_traffic(env: &Env, pod: &Pod) -> anyhow::Result<(u64, u64)> {
    let stats = env
        .client
        .pod_sandbox_stats(&pod.id)
        .await
        .context("PodSandboxStats")?
        .context("no pod stats")?;
    let network = stats.linux.and_then(|l| l.network).context("no network usage")?;
    ensure!(network.timestamp > 0, "network timestamp");
    let eth0 = network.default_interface.context("no default interface")?;
    ensure!(eth0.name == "eth0", "default interface {:?}", eth0.name);
    let value = |v: Option<cri_client::v1::UInt64Value>| v.map(|v| v.value).context("counter unset");
    ensure!(
        value(eth0.rx_errors)? == 0 && value(eth0.tx_errors)? == 0,
        "errors on eth0"
    );
    Ok((value(eth0.rx_bytes)?, value(eth0.tx_bytes)?))
}

fn pod_stats_count_network_traffic_processes_and_containers(env: &Env) -> anyhow::Result<()> {
    let pod_cgroup = PodCgroup::create("stats")?;
    env.block_on(async {
        let pod = pod_cgroup.run_pod(env, "stats-network").await?;
        let servers = env.start_script(&pod, "servers", TCP_SERVERS).await?;
        let idler = env.start_script(&pod, "idler", IDLES).await?;
        let ip = env
            .client
            .pod_sandbox_status(&pod.id, false)
            .await?
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .context("no pod IP")?;

        let (rx_before, tx_before) = pod_traffic(env, &pod).await?;
        // The servers may need a moment to listen.
        let (downloaded, counted) = eventually("the pod's servers to answer", SETTLE, || {
            let ip = ip.clone();
            async move { Ok(tokio::task::spawn_blocking(move || transfer(&ip)).await?.ok()) }
        })
        .await?;
        ensure!(downloaded as u64 == TRANSFER, "downloaded {downloaded} bytes");
        ensure!(counted == TRANSFER.to_string(), "the pod counted {counted:?}");
        let (rx_after, tx_after) = pod_traffic(env, &pod).await?;
        eprintln!("eth0: rx {rx_before} -> {rx_after}, tx {tx_before} -> {tx_after}");
        ensure!(rx_after >= rx_before + TRANSFER, "rx {rx_before} -> {rx_after}");
        ensure!(tx_after >= tx_before + TRANSFER, "tx {tx_before} -> {tx_after}");

        let stats = env.client.pod_sandbox_stats(&pod.id).await?.context("no pod stats")?;
        let attributes = stats.attributes.context("no attributes")?;
        ensure!(attributes.id == pod.id && attributes.metadata == pod.config.metadata);
        let linux = stats.linux.context("no linux stats")?;
        let processes = linux
            .process
            .and_then(|p| p.process_count)
            .context("no process count")?
            .value;
        // sh, two nc servers; sh and sleep.
        ensure!(processes >= 4, "{processes} processes in the pod");
        let cpu = linux.cpu.context("no pod cpu")?;
        ensure!(cpu.usage_core_nano_seconds.is_some_and(|v| v.value > 0), "{cpu:?}");
        let memory = linux.memory.context("no pod memory")?;
        ensure!(memory.working_set_bytes.is_some_and(|v| v.value > 0), "{memory:?}");
        let ids: HashSet<String> = linux
            .containers
            .iter()
            .filter_map(|c| c.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        ensure!(ids == HashSet::from([servers, idler]), "containers {ids:?}");
        env.remove(&pod).await
    })
}

fn list_filters_select_and_unknown_ids_are_not_found(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let first = env.run_pod("stats-filter-a").await?;
        let second = env.run_pod("stats-filter-b").await?;
        let a = env.start_script(&first, "a", IDLES).await?;
        let b = env.start_script(&second, "b", IDLES).await?;
        let listed = |filter: ContainerStatsFilter| async move {
            let stats = env.client.list_container_stats(Some(filter)).await?;
            anyhow::Ok(
                stats
                    .into_iter()
                    .filter_map(|s| s.attributes.map(|a| a.id))
                    .collect::<HashSet<String>>(),
            )
        };
        let by_id = listed(ContainerStatsFilter {
            id: a.clone(),
            ..Default::default()
        })
        .await?;
        ensure!(by_id == HashSet::from([a.clone()]), "by id: {by_id:?}");
        let by_pod = listed(ContainerStatsFilter {
            pod_sandbox_id: second.id.clone(),
            ..Default::default()
        })
        .await?;
        ensure!(by_pod == HashSet::from([b.clone()]), "by pod: {by_pod:?}");
        let by_label = listed(ContainerStatsFilter {
            label_selector: HashMap::from([("container".to_owned(), "a".to_owned())]),
            ..Default::default()
        })
        .await?;
        ensure!(
            by_label.contains(&a) && !by_label.contains(&b),
            "by label: {by_label:?}"
        );
        let all = listed(ContainerStatsFilter::default()).await?;
        ensure!(all.contains(&a) && all.contains(&b), "unfiltered: {all:?}");
        let none = listed(ContainerStatsFilter {
            id: UNKNOWN_ID.to_owned(),
            ..Default::default()
        })
        .await?;
        ensure!(none.is_empty(), "an unknown id selects nothing: {none:?}");

        let pods = env
            .client
            .list_pod_sandbox_stats(Some(PodSandboxStatsFilter {
                id: first.id.clone(),
                ..Default::default()
            }))
            .await?;
        let pod_ids: Vec<String> = pods
            .iter()
            .filter_map(|p| p.attributes.as_ref().map(|a| a.id.clone()))
            .collect();
        ensure!(pod_ids == [first.id.clone()], "pods by id: {pod_ids:?}");
        let by_label = env
            .client
            .list_pod_sandbox_stats(Some(PodSandboxStatsFilter {
                label_selector: second.config.labels.clone(),
                ..Default::default()
            }))
            .await?;
        ensure!(
            by_label
                .iter()
                .filter_map(|p| p.attributes.as_ref())
                .all(|a| a.id == second.id)
                && by_label.len() == 1,
            "pods by label: {by_label:?}"
        );

        expect_code(
            env.client.container_stats(UNKNOWN_ID).await,
            Code::NotFound,
            "ContainerStats",
        )?;
        expect_code(
            env.client.pod_sandbox_stats(UNKNOWN_ID).await,
            Code::NotFound,
            "PodSandboxStats",
        )?;
        env.remove(&first).await?;
        env.remove(&second).await
    })
}

fn pod_metrics_use_the_described_names_and_labels(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("stats-metrics").await?;
        let id = env.start_script(&pod, "measured", IDLES).await?;
        let descriptors = env.client.list_metric_descriptors().await?;
        let keys: HashMap<String, usize> = descriptors
            .iter()
            .map(|d| (d.name.clone(), d.label_keys.len()))
            .collect();
        for wanted in [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "container_memory_usage_bytes",
            "container_fs_usage_bytes",
            "container_network_receive_bytes_total",
            "container_network_transmit_bytes_total",
        ] {
            ensure!(keys.contains_key(wanted), "no descriptor for {wanted}: {keys:?}");
        }
        let all = env.client.list_pod_sandbox_metrics().await?;
        let ours = all
            .iter()
            .find(|m| m.pod_sandbox_id == pod.id)
            .context("no metrics for the pod")?;
        let received = ours
            .metrics
            .iter()
            .find(|m| m.name == "container_network_receive_bytes_total" && m.label_values.contains(&"eth0".to_owned()))
            .context("no eth0 receive metric")?;
        ensure!(received.value.is_some(), "{received:?}");
        let container = ours
            .container_metrics
            .iter()
            .find(|c| c.container_id == id)
            .context("no metrics for the container")?;
        let names: HashSet<&str> = container.metrics.iter().map(|m| m.name.as_str()).collect();
        for wanted in [
            "container_memory_working_set_bytes",
            "container_cpu_usage_seconds_total",
        ] {
            ensure!(names.contains(wanted), "container metrics lack {wanted}: {names:?}");
        }
        for metric in ours.metrics.iter().chain(container.metrics.iter()) {
            ensure!(
                keys.get(&metric.name) == Some(&metric.label_values.len()),
                "metric {} has labels {:?}, unlike its descriptor",
                metric.name,
                metric.label_values
            );
        }
        let working_set = container
            .metrics
            .iter()
            .find(|m| m.name == "container_memory_working_set_bytes")
            .and_then(|m| m.value.as_ref())
            .map(|v| v.value);
        ensure!(working_set.is_some_and(|v| v > 0), "working set {working_set:?}");
        env.remove(&pod).await
    })
}
