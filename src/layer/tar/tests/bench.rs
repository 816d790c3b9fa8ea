//! The compressed-layer benchmark (ignored by default; `scripts/bench-compressed` runs it in a
//! release build): a generated ≥1 GiB gzip layer of ≥100k entries, indexed in one pass; the
//! inflaters compared on the same data; a read near the end after indexing; state size.

use std::time::Instant;

use super::compressed::content;
use super::*;
use crate::layer::LayerOptions;
use crate::layer::blob::{BlobRef, Compression};
use crate::layer::tar::source::StreamState;

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

#[test]
#[ignore = "benchmark: generates a 1 GiB layer; run through scripts/bench-compressed"]
fn bench_gzip_layer() {
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("unionmount-bench-gz");
    fs::create_dir_all(&dir).unwrap();
    let tar_path = dir.join("layer.tar");
    let gz_path = dir.join("layer.tar.gz");
    if !gz_path.exists() {
        let mut t = tar::Builder::new(std::io::BufWriter::new(
            fs::File::create(&tar_path).unwrap(),
        ));
        for i in 0..120_000u64 {
            let len = (i as usize * 7919) % 18_000;
            let mut h = Header::new_ustar();
            h.set_size(len as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(
                &mut h,
                format!("d{}/e{}/file{i}", i % 100, i % 37),
                &content(i, len)[..],
            )
            .unwrap();
        }
        t.into_inner()
            .unwrap()
            .into_inner()
            .unwrap()
            .sync_all()
            .unwrap();
        run(Command::new("sh").arg("-c").arg(format!(
            "gzip -6 -c {} > {}",
            tar_path.display(),
            gz_path.display()
        )));
    }
    let tar_len = fs::metadata(&tar_path).unwrap().len();
    let gz = fs::read(&gz_path).unwrap();
    eprintln!(
        "layer: {tar_len} bytes uncompressed, {} gzip, 120000 files",
        gz.len()
    );

    let t = Instant::now();
    run(Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc {} > /dev/null", gz_path.display())));
    let gzip_s = t.elapsed().as_secs_f64();
    eprintln!(
        "gzip -dc > /dev/null: {gzip_s:.2} s = {:.0} MB/s of tar",
        mbps(tar_len, gzip_s)
    );

    // The inflaters alone on the same deflate data (gzip -c from a file stores its name: skip
    // the header by its flags).
    let mut start = 10;
    if gz[3] & 8 != 0 {
        start += gz[start..].iter().position(|&b| b == 0).unwrap() + 1;
    }
    let deflate = &gz[start..];
    let mut out = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut z = super::super::zlib::Inflater::new(super::super::zlib::Wrap::Raw).unwrap();
    let (mut at, mut total) = (0, 0u64);
    loop {
        let s = z.inflate(&deflate[at..], &mut out, false).unwrap();
        at += s.read;
        total += s.written as u64;
        if s.end {
            break;
        }
    }
    let zlib_s = t.elapsed().as_secs_f64();
    eprintln!("zlib-rs inflate: {:.0} MB/s", mbps(total, zlib_s));
    let t = Instant::now();
    let mut st = miniz_oxide::inflate::stream::InflateState::new(miniz_oxide::DataFormat::Raw);
    let (mut at, mut total) = (0, 0u64);
    loop {
        let r = miniz_oxide::inflate::stream::inflate(
            &mut st,
            &deflate[at..],
            &mut out,
            miniz_oxide::MZFlush::None,
        );
        at += r.bytes_consumed;
        total += r.bytes_written as u64;
        match r.status {
            Ok(miniz_oxide::MZStatus::StreamEnd) => break,
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    let miniz_s = t.elapsed().as_secs_f64();
    eprintln!("miniz_oxide inflate: {:.0} MB/s", mbps(total, miniz_s));

    for (label, digests) in [("index build", false), ("index build + blob sha256", true)] {
        let mut blob = BlobRef {
            path: gz_path.clone(),
            offset: 0,
            len: gz.len() as u64,
            compression: Compression::Detect,
            digest: None,
            diff_id: None,
            image: None,
        };
        if digests {
            use sha2::Digest as _;
            blob.digest = Some(Digest::from_sha256(&sha2::Sha256::digest(&gz)));
        }
        let t = Instant::now();
        let l = TarLayer::open_blob(&blob, &LayerOptions::default()).unwrap();
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "{label}: {s:.2} s = {:.0} MB/s of tar ({:.0} MB/s of gzip), {} nodes",
            mbps(tar_len, s),
            mbps(gz.len() as u64, s),
            l.node_count()
        );
        let StreamState::Gzip(g) = l.stream_state() else {
            panic!()
        };
        let mut state = Vec::new();
        l.stream_state().encode(&mut state);
        eprintln!(
            "checkpoints: {}, state {} bytes = {:.1} MiB per GiB of tar",
            g.checkpoints.len(),
            state.len(),
            state.len() as f64 / (1 << 20) as f64 / (tar_len as f64 / (1u64 << 30) as f64)
        );
        for name in ["d98/e7/file119998", "d50/e36/file60050"] {
            let e = must(&l, name);
            let f = l.open(e.node).unwrap();
            let mut buf = vec![0u8; 128 << 10];
            let t = Instant::now();
            let n = f.read_at(&mut buf, 0).unwrap();
            let first = t.elapsed();
            let t = Instant::now();
            f.read_at(&mut buf, 0).unwrap();
            eprintln!(
                "read {n} bytes of {name}: {:.2} ms cold, {:.3} ms from the chunk cache",
                first.as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

#[test]
#[ignore = "benchmark: reads a generated 256 MiB plain tar; run with --ignored --nocapture"]
fn bench_plain_reads() {
    let dir = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("unionmount-bench-plain");
    fs::create_dir_all(&dir).unwrap();
    let tar_path = dir.join("layer.tar");
    let files = 2048u64;
    if !tar_path.exists() {
        let mut t = tar::Builder::new(std::io::BufWriter::new(
            fs::File::create(&tar_path).unwrap(),
        ));
        for i in 0..files {
            let mut h = Header::new_ustar();
            h.set_size(128 << 10);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(
                &mut h,
                format!("d{}/f{i}", i % 16),
                &content(i, 128 << 10)[..],
            )
            .unwrap();
        }
        t.into_inner()
            .unwrap()
            .into_inner()
            .unwrap()
            .sync_all()
            .unwrap();
    }
    let l = TarLayer::open(&tar_path).unwrap();
    let opened: Vec<_> = (0..files)
        .map(|i| l.open(must(&l, &format!("d{}/f{i}", i % 16)).node).unwrap())
        .collect();
    let mut buf = vec![0u8; 128 << 10];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for f in &opened {
            assert_eq!(f.read_at(&mut buf, 0).unwrap(), buf.len());
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    eprintln!(
        "plain tar, 128 KiB reads of every file (page cache warm): best {:.0} MB/s",
        mbps(files * (128 << 10), best)
    );
    let mut small = [0u8; 4096];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let n = 400_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = &opened[(x % files) as usize];
            f.read_at(&mut small, (x >> 20) % (124 << 10)).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    eprintln!(
        "plain tar, random 4 KiB reads: best {:.0} ns per read",
        best * 1e9 / n as f64
    );
}
