/// The GGUF placement rules, checked once at open time: `general.alignment` a uint32 power of two
/// (default 32); each tensor's offset a multiple of it; its size (elements / block size × bytes per
/// block, rows a whole number of blocks) inside the file; no two tensors overlapping. Gaps (padding)
/// between tensors are allowed, as GGUF writers pad each tensor to the alignment.
extension GGUFFile {
    static func alignment(_ metadata: [GGUFMetadataEntry], path: String) throws -> Int {
        guard let entry = metadata.first(where: { $0.key == "general.alignment" }) else { return defaultAlignment }
        guard case .uint32(let value) = entry.value else {
            throw LoRAMixerError.format(
                "\(path): metadata 'general.alignment' is \(entry.value.typeDescription), expected uint32")
        }
        guard value > 0, value & (value - 1) == 0 else {
            throw LoRAMixerError.format("\(path): metadata 'general.alignment' is \(value), expected a power of two")
        }
        return Int(value)
    }

    static func place(
        _ name: String, _ type: GGMLType, _ dimensions: [Int], _ elementCount: Int, _ offset: Int,
        dataOffset: Int, alignment: Int, fileSize: Int, path: String
    ) throws -> GGUFTensorInfo {
        let context = "\(path): tensor '\(name)'"
        guard offset % alignment == 0 else {
            throw LoRAMixerError.format("\(context) offset \(offset) is not a multiple of the alignment \(alignment)")
        }
        let (start, overflow) = dataOffset.addingReportingOverflow(offset)
        guard !overflow, start <= fileSize else {
            throw LoRAMixerError.format(
                "\(context) starts at \(dataOffset) + \(offset), past the end of the file (\(fileSize) bytes)")
        }
        var byteRange: Range<Int>? = nil
        if let blockSize = type.blockSize, let bytesPerBlock = type.bytesPerBlock {
            let rowLength = dimensions.first ?? 1
            guard rowLength % blockSize == 0 else {
                throw LoRAMixerError.format(
                    "\(context) is \(type.name) with rows of \(rowLength) elements, not a multiple of its block size \(blockSize)")
            }
            let (size, sizeOverflow) = (elementCount / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
            guard !sizeOverflow, size <= fileSize - start else {
                let bytes = sizeOverflow ? "more than \(Int.max)" : "\(size)"
                throw LoRAMixerError.format(
                    "\(context) is \(type.name) \(dimensions) = \(bytes) bytes from offset \(start), past the end of the file (\(fileSize) bytes)")
            }
            byteRange = start..<(start + size)
        }
        return GGUFTensorInfo(
            name: name, type: type, dimensions: dimensions, elementCount: elementCount, offset: offset, byteRange: byteRange)
    }

    /// Sorted by start, each tensor must begin at or after the end of every tensor before it (a
    /// tensor of an unknown type ends, for this check, where it starts). Offsets are relative to the
    /// data section, so ends cannot overflow: `place` bounded them by the file size.
    static func checkOverlaps(_ tensors: [GGUFTensorInfo], path: String) throws {
        let sorted = tensors.sorted { ($0.offset, $0.byteRange?.count ?? 0) < ($1.offset, $1.byteRange?.count ?? 0) }
        var end = 0
        var owner: GGUFTensorInfo? = nil
        for tensor in sorted {
            if tensor.offset < end, let owner {
                throw LoRAMixerError.format(
                    "\(path): tensor '\(tensor.name)' (data offset \(tensor.offset)) overlaps tensor '\(owner.name)' (data offset \(owner.offset), \(owner.byteRange?.count ?? 0) bytes)")
            }
            let tensorEnd = tensor.offset + (tensor.byteRange?.count ?? 0)
            if tensorEnd > end {
                end = tensorEnd
                owner = tensor
            }
        }
    }
}
