//! `longhaul bench --workload video`: compiles a film of `--photos` photos
//! with the video engine, then the equivalent film with the ffmpeg CLI (the
//! same photos, card and clip durations, music; zoompan for the Ken Burns
//! move and xfade for the crossfades; the same x264 preset, crf, tune, GOP
//! and threads), and prints both wall times, their ratio and our peak RSS.
//!
//! Run each photo count in its own process: peak RSS is the process's
//! high-water mark.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context};
use longhaul_workers::video::{self, Aspect, Card, FilmSpec, PhotoSource, PhotoSpec, Timing, Watch, X264};

use crate::cli::BenchArgs;

/// The photos, cycled to `count`, in name order.
fn photo_files(dir: &Path, count: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the photo directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
            matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "webp")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no JPEG, PNG or WebP photos in {}", dir.display());
    }
    Ok(files.iter().cycle().take(count).cloned().collect())
}

struct Files(Vec<PathBuf>);

impl PhotoSource for Files {
    fn read(&self, index: usize) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0[index]).map_err(|err| err.to_string())
    }
}

struct Quiet;

impl Watch for Quiet {
    fn progress(&self, _frame: u64, _total: u64) {}
    fn cancelled(&self) -> bool {
        false
    }
}

/// The process's peak resident set, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The peak resident set of the largest child waited for, in MiB.
fn children_peak_rss_mib() -> Option<f64> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).ok()?;
    Some(usage.max_rss() as f64 / 1024.0)
}

/// The ffmpeg command line for the same film.
fn cli_command(files: &[PathBuf], timing: &Timing, x264: &X264, aspect: Aspect, music: &Path, out: &Path) -> Command {
    let (w, h) = aspect.size();
    // The room the engine's move has: its photos are prepared at `zoom`× the
    // frame, and zoompan goes up to the same.
    let zoom = video::film::ZOOM;
    let (sw, sh) = ((f64::from(w) * zoom) as u32 & !1, (f64::from(h) * zoom) as u32 & !1);
    let fps = timing.fps;
    let seconds = |frames: u32| f64::from(frames) / f64::from(fps);
    let (card, clip, fade) = (seconds(timing.card_frames), seconds(timing.photo_frames), seconds(timing.fade_frames));
    let total = timing.seconds(files.len());
    let mut command = Command::new("ffmpeg");
    command.args(["-y", "-v", "error"]);
    let card_source = format!("color=c=0x12203a:s={w}x{h}:d={card}:r={fps}");
    command.args(["-f", "lavfi", "-i", &card_source]);
    for file in files {
        command.arg("-i").arg(file);
    }
    command.args(["-f", "lavfi", "-i", &card_source]);
    command.args(["-stream_loop", "-1", "-i"]).arg(music);
    let mut graph = Vec::new();
    let last = files.len() + 1;
    graph.push("[0:v]format=yuv420p,setsar=1[v0]".to_owned());
    for i in 1..=files.len() {
        graph.push(format!(
            "[{i}:v]scale={sw}:{sh}:force_original_aspect_ratio=increase,crop={sw}:{sh},\
             zoompan=z='min(zoom+0.0015,{zoom})':d={}:x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':s={w}x{h}:fps={fps},\
             format=yuv420p,setsar=1[v{i}]",
            timing.photo_frames
        ));
    }
    graph.push(format!("[{last}:v]format=yuv420p,setsar=1[v{last}]"));
    let mut previous = "v0".to_owned();
    let mut offset = card - fade;
    for i in 1..=last {
        let label = if i == last { "vout".to_owned() } else { format!("x{i}") };
        graph.push(format!("[{previous}][v{i}]xfade=transition=fade:duration={fade}:offset={offset:.3}[{label}]"));
        previous = label;
        offset += if i == last { card } else { clip } - fade;
    }
    graph.push(format!(
        "[{}:a]atrim=0:{total:.3},afade=t=in:d=0.5,afade=t=out:st={:.3}:d=2.5[aout]",
        last + 1,
        total - 2.5
    ));
    command.args(["-filter_complex", &graph.join(";")]);
    command.args([
        "-map",
        "[vout]",
        "-map",
        "[aout]",
        "-c:v",
        "libx264",
        "-preset",
        &x264.preset,
        "-crf",
        &x264.crf.to_string(),
    ]);
    if let Some(tune) = &x264.tune {
        command.args(["-tune", tune]);
    }
    if let Some(params) = &x264.params {
        command.args(["-x264-params", params]);
    }
    command.args(["-pix_fmt", "yuv420p", "-g", &x264.gop.to_string(), "-threads", &x264.threads.to_string()]);
    command.args([
        "-c:a",
        "aac",
        "-b:a",
        "160k",
        "-ar",
        "48000",
        "-t",
        &format!("{total:.3}"),
        "-movflags",
        "+faststart",
    ]);
    command.arg(out);
    command
}

async fn measure(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    let aspect =
        Aspect::parse(&args.aspect).with_context(|| format!("--aspect must be 9:16 or 16:9, not {}", args.aspect))?;
    let dir = args.photos_dir.clone().unwrap_or_else(|| PathBuf::from("assets/photos"));
    let files = photo_files(&dir, args.photos)?;
    let timing = Timing::default();
    // The CLI is given two threads below; so is x264 here.
    let x264 = X264 { threads: 2, ..X264::default() };
    let music = video::music("daybreak").context("the daybreak soundtrack is missing")?;
    let work = tempfile::tempdir()?;
    let ours = work.path().join("longhaul.mp4");
    let spec = FilmSpec {
        aspect,
        timing,
        x264: x264.clone(),
        title: Card {
            headline: "2026".into(),
            subtitle: "A year in travel".into(),
            lines: vec!["6 trips · 33 reservations".into()],
        },
        end: Card {
            headline: "2026".into(),
            subtitle: "That was the year".into(),
            lines: vec!["{photos} photos".into()],
        },
        photos: files
            .iter()
            .enumerate()
            .map(|(i, f)| PhotoSpec {
                id: f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                title: format!("Photo {}", i + 1),
                detail: "14 February 2026".into(),
            })
            .collect(),
        music: Some(music),
    };
    eprintln!("compiling {} photos ({}, {} fps) with longhaul…", files.len(), aspect.as_str(), timing.fps);
    let started = Instant::now();
    let source = Files(files.clone());
    let out = ours.clone();
    let film = tokio::task::spawn_blocking(move || video::compile(&spec, &source, &Quiet, &out)).await??;
    let ours_s = started.elapsed().as_secs_f64();
    let our_rss = peak_rss_mib();

    let mut result = serde_json::json!({
        "workload": "video",
        "photos": files.len(),
        "photo_dir": dir.display().to_string(),
        "aspect": aspect.as_str(),
        "fps": timing.fps,
        "frames": film.frames,
        "film_seconds": film.seconds,
        "skipped": film.skipped.len(),
        "x264": { "preset": x264.preset, "crf": x264.crf, "tune": x264.tune, "gop": x264.gop, "threads": x264.threads, "params": x264.params },
        "longhaul_s": (ours_s * 1000.0).round() / 1000.0,
        "longhaul_fps": ((film.frames as f64 / ours_s) * 10.0).round() / 10.0,
        "longhaul_peak_rss_mib": our_rss.map(|m| m.round()),
        "longhaul_bytes": std::fs::metadata(&ours).map(|m| m.len()).unwrap_or(0),
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(keep) = &args.keep {
        std::fs::create_dir_all(keep)?;
        std::fs::copy(&ours, keep.join("longhaul.mp4"))?;
        std::fs::write(keep.join("longhaul.jpg"), &film.thumbnail)?;
    }
    if args.skip_cli {
        return Ok(result);
    }
    let music_file = work.path().join("daybreak.m4a");
    std::fs::write(&music_file, music)?;
    let theirs = work.path().join("ffmpeg-cli.mp4");
    let mut command = cli_command(&files, &timing, &x264, aspect, &music_file, &theirs);
    eprintln!("compiling the same film with the ffmpeg CLI (zoompan + xfade)…");
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || command.status()).await?.context("cannot run ffmpeg")?;
    let theirs_s = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("the ffmpeg CLI failed: {status}");
    }
    result["ffmpeg_cli_s"] = serde_json::json!((theirs_s * 1000.0).round() / 1000.0);
    result["ffmpeg_cli_peak_rss_mib"] = serde_json::json!(children_peak_rss_mib().map(|m| m.round()));
    result["ffmpeg_cli_bytes"] = serde_json::json!(std::fs::metadata(&theirs).map(|m| m.len()).unwrap_or(0));
    result["ratio"] = serde_json::json!(((ours_s / theirs_s) * 1000.0).round() / 1000.0);
    if let Some(keep) = &args.keep {
        std::fs::copy(&theirs, keep.join("ffmpeg-cli.mp4"))?;
    }
    Ok(result)
}

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let result = measure(args).await?;
    eprintln!(
        "longhaul video ({} photos, {}, {} fps, {} frames): longhaul {} s, ffmpeg CLI {} s, ratio {}; peak RSS longhaul {} MiB, ffmpeg CLI {} MiB",
        result["photos"],
        result["aspect"],
        result["fps"],
        result["frames"],
        result["longhaul_s"],
        result["ffmpeg_cli_s"],
        result["ratio"],
        result["longhaul_peak_rss_mib"],
        result["ffmpeg_cli_peak_rss_mib"],
    );
    println!("{result}");
    Ok(())
}
