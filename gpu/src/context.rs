//! Device probing, the [`GpuContext`] (device + queue + compiled pipelines) and
//! device-resident f32 buffers ([`GpuTensor`]).
//!
//! Adapters are enumerated and ranked by device type (discrete > integrated > virtual >
//! CPU/software > other) instead of going through `request_adapter`, so that a software
//! Vulkan implementation such as Mesa's lavapipe (`DeviceType::Cpu`) is found on a
//! machine without a GPU and tests exercise the shaders there. Device errors (shader
//! validation, out of memory) are captured by an uncaptured-error handler and returned
//! as [`GpuError::Device`] after the next submission instead of panicking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::GpuError;

/// A compute adapter as seen by [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// Adapter name ("NVIDIA GeForce RTX 4070", "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// Backend ("vulkan", "metal", "dx12").
    pub backend: String,
    /// Device type ("discrete", "integrated", "virtual", "cpu", "other").
    pub device_type: String,
    /// Driver name and version as reported by the backend.
    pub driver: String,
    /// Whether this is a software implementation running on the CPU (lavapipe, WARP).
    pub is_software: bool,
}

/// Which adapter [`GpuContext::new`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevicePreference {
    /// The best adapter there is, software ones (lavapipe) included.
    #[default]
    Any,
    /// Only hardware adapters (discrete, integrated or virtual GPUs).
    HardwareOnly,
    /// Only software adapters (useful to test on a machine that has both).
    SoftwareOnly,
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn to_info(i: &wgpu::AdapterInfo) -> AdapterInfo {
    let device_type = match i.device_type {
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    };
    AdapterInfo {
        name: i.name.clone(),
        backend: i.backend.to_str().to_string(),
        device_type: device_type.to_string(),
        driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        is_software: i.device_type == wgpu::DeviceType::Cpu,
    }
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // Native compute backends only (Vulkan, Metal, DX12); WGPU_BACKEND overrides.
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    wgpu::Instance::new(desc)
}

/// Lists every compute adapter wgpu can open, best first. Empty when there is none
/// (no GPU and no software Vulkan driver); never fails.
pub fn probe() -> Vec<AdapterInfo> {
    let inst = instance();
    let mut adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
    adapters.iter().map(|a| to_info(&a.get_info())).collect()
}

/// A device-resident f32 buffer of `len` values (storage, copy source and destination).
#[derive(Debug, Clone)]
pub struct GpuTensor {
    pub(crate) buf: Arc<wgpu::Buffer>,
    /// Number of f32 values.
    pub len: usize,
}

/// An open compute device: adapter, device, queue and the pipelines compiled so far.
/// Cheap to share (`Arc<GpuContext>`); every method takes `&self`.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: AdapterInfo,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    errors: Arc<Mutex<Vec<String>>>,
    /// A 16-byte placeholder bound where a kernel has an optional input (bias).
    pub(crate) dummy: wgpu::Buffer,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info)
            .finish()
    }
}

impl GpuContext {
    /// Opens the best adapter allowed by `pref`. Fails with [`GpuError::NoAdapter`]
    /// (naming the adapters that were found, if any) when none qualifies.
    pub fn new(pref: DevicePreference) -> Result<Arc<GpuContext>, GpuError> {
        let inst = instance();
        let mut adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        adapters.sort_by_key(|a| type_rank(a.get_info().device_type));
        let found: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = to_info(&a.get_info());
                format!("{} ({}, {})", i.name, i.backend, i.device_type)
            })
            .collect();
        let adapter = adapters
            .into_iter()
            .find(|a| {
                let sw = a.get_info().device_type == wgpu::DeviceType::Cpu;
                match pref {
                    DevicePreference::Any => true,
                    DevicePreference::HardwareOnly => !sw,
                    DevicePreference::SoftwareOnly => sw,
                }
            })
            .ok_or(GpuError::NoAdapter {
                preference: pref,
                found,
            })?;
        let info = to_info(&adapter.get_info());
        // Ask for the adapter's own limits: encoder buffers (e.g. base FFN activations,
        // 1500 x 2048 f32 = 12 MB) stay well inside the defaults, but large conformer
        // inputs may not.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("hark-gpu"),
            required_features: wgpu::Features::empty(),
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dummy"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Arc::new(GpuContext {
            device,
            queue,
            info,
            pipelines: Mutex::new(HashMap::new()),
            errors,
            dummy,
        }))
    }

    /// The adapter this context runs on.
    pub fn adapter(&self) -> &AdapterInfo {
        &self.info
    }

    /// Returns (and clears) device errors reported since the last check.
    pub(crate) fn check_errors(&self, op: &str) -> Result<(), GpuError> {
        let mut v = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.is_empty() {
            return Ok(());
        }
        let msg = v.join("; ");
        v.clear();
        Err(GpuError::Device {
            op: op.to_string(),
            reason: msg,
        })
    }

    /// The compute pipeline for WGSL `source` (entry point `main`), compiled once per
    /// `key`.
    pub(crate) fn pipeline(
        &self,
        key: &str,
        source: impl FnOnce() -> String,
    ) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let mut map = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get(key) {
            return Ok(p.clone());
        }
        let src = source();
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
        let pipe = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        self.check_errors(&format!("compiling kernel {key}"))?;
        let pipe = Arc::new(pipe);
        map.insert(key.to_string(), pipe.clone());
        Ok(pipe)
    }

    fn storage_usage() -> wgpu::BufferUsages {
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
    }

    /// Uploads f32 values into a new device buffer.
    pub fn upload(&self, data: &[f32]) -> GpuTensor {
        GpuTensor {
            buf: Arc::new(self.upload_bytes("tensor", bytemuck::cast_slice(data))),
            len: data.len(),
        }
    }

    /// Uploads raw bytes (padded to a multiple of 4, at least 16) into a storage buffer.
    pub(crate) fn upload_bytes(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        let want = bytes.len().div_ceil(4).max(4) * 4;
        let init = |contents: &[u8]| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: Self::storage_usage(),
                })
        };
        if want == bytes.len() {
            init(bytes)
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(want, 0);
            init(&padded)
        }
    }

    /// A new zero-filled device buffer of `len` f32 values.
    pub fn zeros(&self, len: usize) -> GpuTensor {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("activations"),
            size: (len.max(4) * 4) as u64,
            usage: Self::storage_usage(),
            mapped_at_creation: false,
        });
        GpuTensor {
            buf: Arc::new(buf),
            len,
        }
    }

    /// Overwrites the start of `t` with `data` (queued before the next submission).
    pub fn write(&self, t: &GpuTensor, data: &[f32]) -> Result<(), GpuError> {
        if data.len() > t.len {
            return Err(GpuError::Shape {
                op: "write",
                reason: format!("{} values into a buffer of {}", data.len(), t.len),
            });
        }
        if !data.is_empty() {
            self.queue
                .write_buffer(&t.buf, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device {
                op: "wait for the device".into(),
                reason: e.to_string(),
            })?;
        self.check_errors("running kernels")
    }

    /// Waits for all queued work and reads `t` back.
    pub fn download(&self, t: &GpuTensor) -> Result<Vec<f32>, GpuError> {
        let size = (t.len * 4) as u64;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("download"),
            });
        enc.copy_buffer_to_buffer(&t.buf, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device {
                op: "download: wait for the device".into(),
                reason: e.to_string(),
            })?;
        self.check_errors("running kernels")?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(GpuError::Device {
                    op: "download: map staging buffer".into(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(GpuError::Device {
                    op: "download: map staging buffer".into(),
                    reason: "the map callback was dropped".into(),
                })
            }
        }
        let out = {
            let view = staging.get_mapped_range(..).map_err(|e| GpuError::Device {
                op: "download: read staging buffer".into(),
                reason: e.to_string(),
            })?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Starts recording kernels; they run when [`Recorder::submit`] is called.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder {
            ctx: self,
            enc: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("hark"),
                }),
        }
    }
}

/// Records kernel dispatches into one command buffer (each dispatch is its own
/// synchronisation scope, so later kernels see earlier writes).
pub struct Recorder<'a> {
    pub(crate) ctx: &'a GpuContext,
    enc: wgpu::CommandEncoder,
}

impl Recorder<'_> {
    /// Records one dispatch of `pipe` with a uniform parameter block (binding 0) and
    /// `buffers` at bindings 1.. in order.
    pub(crate) fn dispatch(
        &mut self,
        pipe: &wgpu::ComputePipeline,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) {
        let mut bytes = [0u32; 16];
        bytes[..params.len()].copy_from_slice(params);
        let ubuf = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(&bytes),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let layout = pipe.get_bind_group_layout(0);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: ubuf.as_entire_binding(),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bg = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &entries,
            });
        let mut pass = self.enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(pipe);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Records a copy of `n` values from `src` to `dst` (both from their start).
    pub fn copy(&mut self, src: &GpuTensor, dst: &GpuTensor, n: usize) -> Result<(), GpuError> {
        if src.len < n || dst.len < n {
            return Err(GpuError::Shape {
                op: "copy",
                reason: format!("{n} values from {} into {}", src.len, dst.len),
            });
        }
        if n > 0 {
            self.enc
                .copy_buffer_to_buffer(&src.buf, 0, &dst.buf, 0, (n * 4) as u64);
        }
        Ok(())
    }

    /// Records zeroing values `start..start + n` of `t` (e.g. padded frames).
    pub fn clear(&mut self, t: &GpuTensor, start: usize, n: usize) -> Result<(), GpuError> {
        if start + n > t.len {
            return Err(GpuError::Shape {
                op: "clear",
                reason: format!("values {start}..{} of a buffer of {}", start + n, t.len),
            });
        }
        if n > 0 {
            self.enc
                .clear_buffer(&t.buf, (start * 4) as u64, Some((n * 4) as u64));
        }
        Ok(())
    }

    /// Submits everything recorded (does not wait; [`GpuContext::download`] does).
    pub fn submit(self) -> Result<(), GpuError> {
        self.ctx.queue.submit([self.enc.finish()]);
        self.ctx.check_errors("submitting kernels")
    }
}

/// Splits `n` workgroups over a 2-D grid (x at most 65535), for 1-D kernels that
/// reconstruct the index as `wid.y · num_workgroups.x + wid.x`.
pub(crate) fn grid_1d(n: usize) -> [u32; 3] {
    let n = n.max(1);
    let x = n.min(65535);
    let y = n.div_ceil(x);
    [x as u32, y as u32, 1]
}

// --- Additions for the decoder session (offset copies and small u32 uploads). ---

impl GpuContext {
    /// Overwrites the u32 values `offset..offset + data.len()` of `t` (queued before the
    /// next submission): index tables and token ids for kernels that read `array<u32>`.
    pub(crate) fn write_u32(
        &self,
        t: &GpuTensor,
        offset: usize,
        data: &[u32],
    ) -> Result<(), GpuError> {
        if offset + data.len() > t.len {
            return Err(GpuError::Shape {
                op: "write_u32",
                reason: format!(
                    "values {offset}..{} into a buffer of {}",
                    offset + data.len(),
                    t.len
                ),
            });
        }
        if !data.is_empty() {
            self.queue
                .write_buffer(&t.buf, (offset * 4) as u64, bytemuck::cast_slice(data));
        }
        Ok(())
    }
}

impl Recorder<'_> {
    /// Records a copy of `n` values from `src[src_off..]` to `dst[dst_off..]`.
    pub fn copy_range(
        &mut self,
        src: &GpuTensor,
        src_off: usize,
        dst: &GpuTensor,
        dst_off: usize,
        n: usize,
    ) -> Result<(), GpuError> {
        if src_off + n > src.len || dst_off + n > dst.len {
            return Err(GpuError::Shape {
                op: "copy_range",
                reason: format!(
                    "{n} values from {src_off} of {} into {dst_off} of {}",
                    src.len, dst.len
                ),
            });
        }
        if n > 0 {
            self.enc.copy_buffer_to_buffer(
                &src.buf,
                (src_off * 4) as u64,
                &dst.buf,
                (dst_off * 4) as u64,
                (n * 4) as u64,
            );
        }
        Ok(())
    }
}
