import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

/**
 * args: bootstrap topic partition codec key value count; prints each record's offset.
 * value "-": one record per line of stdin (count is ignored); "@N": N bytes of 'B' (a bomb).
 */
public class SendCompressed {
    public static void main(String[] args) throws Exception {
        List<String> values = new ArrayList<>();
        if (args[5].equals("-")) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line; (line = in.readLine()) != null; ) if (!line.isEmpty()) values.add(line);
        } else if (args[5].startsWith("@")) {
            values.add("B".repeat(Integer.parseInt(args[5].substring(1))));
        } else {
            for (int i = 0; i < Integer.parseInt(args[6]); i++) values.add(args[5]);
        }
        int largest = values.stream().mapToInt(String::length).max().orElse(0);
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("compression.type", args[3]);
        props.put("linger.ms", "50");
        props.put("batch.size", String.valueOf(Math.max(16384, 2 * largest)));
        props.put("max.request.size", String.valueOf(Math.max(1048576, 2 * largest)));
        props.put("buffer.memory", String.valueOf(Math.max(33554432L, 4L * largest)));
        props.put("request.timeout.ms", "120000");
        props.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (String value : values) {
                sent.add(producer.send(new ProducerRecord<>(args[1], Integer.parseInt(args[2]), args[4], value)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) System.out.println(f.get().offset());
        }
    }
}
