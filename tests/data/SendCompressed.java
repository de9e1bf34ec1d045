import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

/** args: bootstrap topic partition codec key value count; prints each record's offset. */
public class SendCompressed {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("compression.type", args[3]);
        props.put("linger.ms", "50");
        props.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        props.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            int count = Integer.parseInt(args[6]);
            java.util.List<java.util.concurrent.Future<RecordMetadata>> sent = new java.util.ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(args[1], Integer.parseInt(args[2]), args[4], args[5])));
            }
            producer.flush();
            for (java.util.concurrent.Future<RecordMetadata> f : sent) System.out.println(f.get().offset());
        }
    }
}
